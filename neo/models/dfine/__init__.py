"""D-FINE: fine-grained distribution refinement on top of neo's RT-DETR parts."""
