#!/usr/bin/env bash
# InfoGAN, 3 seeds (issue 10): test/code_error (the categorical code as a digit classifier) mean ± std.
exec "$(dirname "$0")/../study.sh" infogan_mnist -m experiment=infogan_mnist seed=1,2,3 "$@"
