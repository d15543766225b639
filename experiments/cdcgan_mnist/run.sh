#!/usr/bin/env bash
# Train conf/experiment/cdcgan_cpu5.yaml and publish results.md / results.json and the pictures here.
exec "$(dirname "$0")/../study.sh" cdcgan_mnist experiment=cdcgan_cpu5 "$@"
