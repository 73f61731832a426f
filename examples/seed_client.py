#!/usr/bin/env python3
"""How the seed's (genezio-python-executor's) users call it, unchanged:
requests to POST the files, requests_toolbelt's MultipartDecoder to read the
reply (the seed builds it with requests_toolbelt's MultipartEncoder). pyexec
answers the same request the same way.

    python3 seed_client.py [--url URL] [--deps requests,numpy] main.py [helper.py ...]

prints stdout and stderr and writes the generated files into the current
directory. Needs the packages requests and requests-toolbelt (Debian:
python3-requests python3-requests-toolbelt).
"""

import argparse
import re
import sys

import requests
from requests_toolbelt.multipart.decoder import MultipartDecoder


def execute(url, paths, dependencies=""):
    """POSTs the files as the seed's clients do; returns {part name: bytes}:
    "stdout", "stderr" and one entry per generated file, the shape of the
    seed's README ("Example Response Content"). An error reply raises
    RuntimeError with the server's detail."""
    files = [("files", open(p, "rb")) for p in paths]
    try:
        resp = requests.post(url, params={"dependencies": dependencies}, files=files)
    finally:
        for _, f in files:
            f.close()
    if resp.status_code != 200:
        raise RuntimeError("HTTP %d: %s" % (resp.status_code, resp.json()["detail"]))
    result = {}
    for part in MultipartDecoder.from_response(resp).parts:
        disposition = part.headers[b"Content-Disposition"].decode("utf-8")
        name = re.search(r'(?:^|;)\s*name="([^"]*)"', disposition).group(1)
        result[name] = part.content
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default="http://localhost:8000/execute")
    p.add_argument("--deps", default="")
    p.add_argument("files", nargs="+", help="main.py first, then helpers")
    a = p.parse_args()
    result = execute(a.url, a.files, a.deps)
    print(result.pop("stdout").decode("utf-8", "replace"), end="")
    print(result.pop("stderr").decode("utf-8", "replace"), end="", file=sys.stderr)
    for name, content in result.items():
        with open(name.replace("/", "_"), "wb") as f:
            f.write(content)
        print("saved %s (%d bytes)" % (name, len(content)), file=sys.stderr)


if __name__ == "__main__":
    main()
