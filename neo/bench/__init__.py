"""Benchmarks behind `neo-bench`: each module measures one part of neo and prints figures."""
