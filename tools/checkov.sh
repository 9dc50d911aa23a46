#!/usr/bin/env bash
# Run checkov (AWS users' security scanner: CIS EKS/VPC checks among its ~1000) on what `eksprivate export`
# writes, from its own virtualenv: checkov pulls in ~100 packages and takes minutes to install, so it is kept
# out of eksprivate's and the test suite's dependencies (docs/export.md, "Judged by checkov").
#
#   tools/checkov.sh                  export a fresh sandbox cluster in both formats, scan both
#   tools/checkov.sh DIR [DIR ...]    scan exports you already have (a template.yaml dir or a .tf dir)
#
# The virtualenv lives in .venv-checkov/ (ignored by git), made on first use with CHECKOV_VERSION.
# Exit status: checkov's (non-zero when a check fails that is not skipped in docs/security.md's exceptions).
set -euo pipefail
cd "$(dirname "$0")/.."
CHECKOV_VERSION="${CHECKOV_VERSION:-3.3.30}"
VENV=.venv-checkov
# The checks eksprivate fails on purpose: each is explained under "Exceptions" in docs/security.md.
SKIP="${CHECKOV_SKIP:-$(sed -n 's/^<!-- checkov-skip: \(.*\) -->$/\1/p' docs/security.md | paste -sd, -)}"

if [ ! -x "$VENV/bin/checkov" ] || ! "$VENV/bin/checkov" --version | grep -qx "$CHECKOV_VERSION"; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "checkov==$CHECKOV_VERSION"
fi

dirs=("$@")
if [ ${#dirs[@]} -eq 0 ]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && cat > checkov.toml <<'TOML'
name = "checkov"
region = "eu-central-1"
admins = ["arn:aws:iam::123456789012:role/platform-admins"]
ecr_repositories = ["mirror/nginx"]
pull_through_cache = ["ecr-public", "k8s"]
endpoints = ["ssm"]
# CKV_AWS_338 wants a year of logs; eksprivate's default is 90 days (docs/security.md, "checkov").
log_retention_days = 365
TOML
  )
  eks="$PWD/.venv/bin/eksprivate"
  (cd "$work" && "$eks" up --sandbox --time-scale 0.002 -c checkov.toml >/dev/null 2>&1 \
     && "$eks" export --sandbox -c checkov.toml --format cloudformation --output cfn \
     && "$eks" export --sandbox -c checkov.toml --format terraform --output tf \
     ; status=$?; "$eks" down --sandbox -c checkov.toml --yes >/dev/null 2>&1; "$eks" sandbox stop >/dev/null; exit $status)
  dirs=("$work/cfn" "$work/tf")
fi

"$VENV/bin/checkov" --version
rc=0
for dir in "${dirs[@]}"; do
  echo "== checkov on $dir (skipped on purpose: ${SKIP:-none})"
  # --skip-download: no call to the Prisma Cloud platform (checks and guidelines are the installed ones).
  "$VENV/bin/checkov" --quiet --compact --skip-download -d "$dir" ${SKIP:+--skip-check "$SKIP"} || rc=$?
done
exit $rc
