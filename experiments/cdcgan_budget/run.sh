#!/usr/bin/env bash
# The cDCGAN (model defaults) under the same 10-minute budget as experiments/stackgan_mnist.
exec "$(dirname "$0")/../study.sh" cdcgan_budget experiment=gan_budget model=cdcgan "$@"
