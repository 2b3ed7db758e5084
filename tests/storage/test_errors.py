"""Failure classification: status codes come from the response or the message's words, never from a port or a path."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

from neo.storage.errors import CorruptDownloadError, classify


def client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "GetObject")


@pytest.mark.parametrize("port", [40312, 40412, 44030, 54041, 403, 404])
def test_a_cut_connection_is_network_whatever_the_port(port):
    url = f"http://127.0.0.1:{port}/neo-test/checkpoints/big.ckpt"
    assert classify(ConnectionClosedError(endpoint_url=url)) == "network"
    assert classify(EndpointConnectionError(endpoint_url=url)) == "network"
    assert classify(ReadTimeoutError(endpoint_url=url)) == "network"
    assert classify(OSError(f"Connection reset by peer while reading {url}")) == "network"


def test_status_codes_come_from_the_response_or_the_words():
    assert classify(client_error("NoSuchKey", 404)) == "not found"
    assert classify(client_error("AccessDenied", 403)) == "access denied"
    assert classify(client_error("Forbidden", 403)) == "access denied"
    assert classify(OSError("An error occurred (403) when calling the HeadObject operation: Forbidden")) == "access denied"
    assert classify(OSError("An error occurred (404) when calling the HeadObject operation: Not Found")) == "not found"
    assert classify(OSError("server error at http://10.0.0.1:4040/runs/404/x.ckpt")) == "error"
    assert classify(client_error("InternalError", 500)) == "error"


def test_typed_failures_keep_their_reason():
    assert classify(FileNotFoundError("runs/x/last.ckpt")) == "not found"
    assert classify(PermissionError("denied")) == "access denied"
    assert classify(CorruptDownloadError("size 3 != 4")) == "corrupt"
    assert classify(TimeoutError("read timed out")) == "network"
