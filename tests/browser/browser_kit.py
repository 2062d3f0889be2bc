"""What the browser tests share: herald's API called as a script calls it (to set up and to
check what a page did), and how a test fails."""

import json
import sys
import urllib.request


def api(url, method, path, token, body=None):
    """`method path` on the stack at `url` with `token`, a JSON `body`; the JSON answer."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url + path, data=data, method=method)
    request.add_header("Authorization", "Bearer " + token)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read() or b"null")


def fail(message):
    print("FAIL: " + message, file=sys.stderr)
    sys.exit(1)
