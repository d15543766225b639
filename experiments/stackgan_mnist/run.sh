#!/usr/bin/env bash
# The stacked GAN under the 10-minute budget of experiment=gan_budget (run beside experiments/cdcgan_budget).
exec "$(dirname "$0")/../study.sh" stackgan_mnist experiment=gan_budget model=stackgan "$@"
