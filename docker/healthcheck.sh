#!/bin/bash
# Container health check without curl: GET http://127.0.0.1:PORT/healthz over bash's /dev/tcp;
# healthy when the status is 200. The images' HEALTHCHECK and compose's use it.
set -euo pipefail
port=${1:?usage: videocall-healthcheck PORT}
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
read -r -t 2 _ status _ <&3
[ "$status" = 200 ]
