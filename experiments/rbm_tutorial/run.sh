#!/usr/bin/env bash
# Train conf/experiment/rbm_tutorial.yaml and publish results.md / results.json and the pictures here.
exec "$(dirname "$0")/../study.sh" rbm_tutorial experiment=rbm_tutorial "$@"
