#!/usr/bin/env bash
# Train conf/experiment/dbn_classifier.yaml and publish results.md / results.json and the pictures here.
exec "$(dirname "$0")/../study.sh" dbn_classifier experiment=dbn_classifier "$@"
