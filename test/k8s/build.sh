#!/usr/bin/env bash
# Builds the upstream programs the Kubernetes and CNI tests run, from pinned Go modules, into a
# cache outside the work tree keyed by version. A second run finds them and takes a second.
#
#   kube-apiserver, kubectl   k8s.io/kubernetes $K8S_VERSION
#   etcd                      go.etcd.io/etcd/server/v3 $ETCD_VERSION (3.6: the line 1.35 is built
#                             and tested against; Debian's 3.4.23 lacks the watch-progress and
#                             health endpoints the apiserver expects)
#   cnitool                   github.com/containernetworking/cni $CNI_VERSION (a real CNI client: libcni)
#
# k8s.io/kubernetes cannot be built as a dependency as it is: its go.mod points every staging
# module (k8s.io/api, k8s.io/client-go, ...) at ./staging with `replace` lines, which Go ignores
# in a dependency, and requires them at v0.0.0. So each program is built from a small wrapper
# module made here: it requires the pinned release and replaces every staging module named in
# that release's own go.mod with its published v0.X.Y tag. The list is read from the release's
# go.mod, not written out, so a new pin needs no edit here.
#
# Go is only test tooling: nothing Twill ships is written in or needs Go.
#
# Usage: test/k8s/build.sh            build what is missing, print the bin folder
#        test/k8s/build.sh --print    print the bin folder only (what the tests look in)
# Env:   TWILL_K8S_CACHE (default ~/.cache/twill-k8s), GOMODCACHE/GOCACHE as Go has them.
set -euo pipefail

K8S_VERSION=v1.35.4
ETCD_VERSION=v3.6.16
CNI_VERSION=v1.3.0

cache=${TWILL_K8S_CACHE:-$HOME/.cache/twill-k8s}
bin="$cache/bin-k8s-$K8S_VERSION-etcd-$ETCD_VERSION-cni-$CNI_VERSION"
if [ "${1:-}" = "--print" ]; then echo "$bin"; exit 0; fi

want=(kube-apiserver kubectl etcd cnitool)
missing=()
for b in "${want[@]}"; do [ -x "$bin/$b" ] || missing+=("$b"); done
if [ "${#missing[@]}" -eq 0 ]; then echo "$bin"; exit 0; fi

command -v go >/dev/null || { echo "test/k8s/build.sh: Go is needed to build ${missing[*]} (none found on PATH)" >&2; exit 1; }
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local
mkdir -p "$bin"
work="$cache/src"
mkdir -p "$work"
started=$(date +%s)

# One wrapper module per upstream project, so their dependency graphs never meet.
wrapper() { # dir module-path go-version
  rm -rf "$work/$1"; mkdir -p "$work/$1"
  printf 'module twill.invalid/%s\n\ngo %s\n' "$1" "$2" >"$work/$1/go.mod"
}

has() { [[ " ${missing[*]} " == *" $1 "* ]]; }

if has kube-apiserver || has kubectl; then
  wrapper kubernetes 1.25.0
  ver=${K8S_VERSION#v}; staging="v0.${ver#*.}"
  k8smod=$(cd "$work/kubernetes" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')
  {
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo 'replace ('
    # Upstream: `k8s.io/api => ./staging/src/k8s.io/api`; here: `k8s.io/api => k8s.io/api v0.35.4`.
    sed -n 's#^\s*\(k8s\.io/[A-Za-z0-9._-]*\) => \./staging/src/k8s\.io/.*$#\t\1 => \1 '"$staging"'#p' "$k8smod"
    echo ')'
  } >>"$work/kubernetes/go.mod"
  # Version stamps, as upstream's hack/lib/version.sh sets them, so /version and kubectl's skew
  # check see the real release.
  minor=${ver#*.}; minor=${minor%%.*}
  ld="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  for b in kube-apiserver kubectl; do
    has "$b" || continue
    echo "building $b $K8S_VERSION" >&2
    (cd "$work/kubernetes" && go build -trimpath -ldflags "$ld" -o "$bin/$b.tmp" "k8s.io/kubernetes/cmd/$b")
    mv "$bin/$b.tmp" "$bin/$b"
  done
fi

if has etcd; then
  wrapper etcd 1.25.0
  printf '\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" >>"$work/etcd/go.mod"
  echo "building etcd $ETCD_VERSION" >&2
  (cd "$work/etcd" && go build -trimpath -ldflags "-s -w" -o "$bin/etcd.tmp" go.etcd.io/etcd/server/v3)
  mv "$bin/etcd.tmp" "$bin/etcd"
fi

if has cnitool; then
  wrapper cni 1.21
  printf '\nrequire github.com/containernetworking/cni %s\n' "$CNI_VERSION" >>"$work/cni/go.mod"
  echo "building cnitool $CNI_VERSION" >&2
  (cd "$work/cni" && go build -trimpath -ldflags "-s -w" -o "$bin/cnitool.tmp" github.com/containernetworking/cni/cnitool)
  mv "$bin/cnitool.tmp" "$bin/cnitool"
fi

echo "built ${missing[*]} in $(($(date +%s) - started)) s" >&2
echo "$bin"
