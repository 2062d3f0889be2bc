#!/usr/bin/env python3
"""
Wrapper around SAM CLI (tested with aws-sam-cli 1.170.0) that makes `--docker-network host`
really run the Lambda containers in the host network namespace.

Why: SAM 1.170 ignores `--docker-network host` (samcli/local/docker/container.py only connects
the container to the network `if self.network_id and self.network_id != "host"`), so the
function container stays on the default bridge and 127.0.0.1 inside it is NOT the host.
See aws/aws-sam-cli#4236 and the unmerged PR #7278.

What this does (only for SAM's Lambda containers, label sam.cli.container.type=lambda, and only
when `--docker-network host` is on the command line):
  * network_mode="host", drop the port publishing (incompatible with host networking);
  * make the RIE listen on 127.0.0.1:<the port SAM already picked>  (--runtime-interface-emulator-address)
  * give the RIE's Runtime API a free host port instead of the fixed 127.0.0.1:9001
    (--runtime-api-address), so several function containers can run at once.

Run it with the interpreter of the venv where aws-sam-cli is installed:
  /work/main/.venv-sam/bin/python /tmp/sam-research/sam-hostnet.py local invoke ... --docker-network host
"""
import socket
import sys

import docker.models.containers as _dmc

_orig_create = _dmc.ContainerCollection.create


def _free_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _hostnet_create(self, image=None, command=None, **kwargs):
    labels = kwargs.get("labels") or {}
    entry = kwargs.get("entrypoint")
    if (
        labels.get("sam.cli.container.type") == "lambda"
        and isinstance(entry, list)
        and entry
        and entry[0] == "/var/rapid/aws-lambda-rie"
        and "network_mode" not in kwargs
    ):
        ports = kwargs.pop("ports", None) or {}
        binding = ports.get("8080")  # SAM: {"8080": (host_interface, host_port)}
        if binding is None:
            raise RuntimeError(f"sam-hostnet: unexpected port mapping {ports!r}")
        host_if, host_port = binding
        if host_if in ("0.0.0.0", None, ""):
            host_if = "127.0.0.1"
        kwargs["network_mode"] = "host"
        kwargs["entrypoint"] = list(entry) + [
            "--runtime-interface-emulator-address",
            f"{host_if}:{host_port}",
            "--runtime-api-address",
            f"127.0.0.1:{_free_port()}",
        ]
    return _orig_create(self, image, command, **kwargs)


if "host" in sys.argv and any(
    a == "--docker-network" and i + 1 < len(sys.argv) and sys.argv[i + 1] == "host"
    for i, a in enumerate(sys.argv)
) or "--docker-network=host" in sys.argv:
    _dmc.ContainerCollection.create = _hostnet_create

from samcli.cli.main import cli  # noqa: E402

if __name__ == "__main__":
    sys.argv[0] = "sam"
    sys.exit(cli())
