# Sourced by hack/controlplane.sh and hack/node/build.sh: kube_ldflags VERSION prints the linker
# flags that stamp a Kubernetes component built from the k8s.io/kubernetes module with VERSION
# (what `--version` and the API server's /version report), and strip it.
kube_ldflags() {
  local version=$1 minor
  minor=$(echo "$version" | cut -d. -f2)
  echo "-s -w" \
    "-X k8s.io/component-base/version.gitVersion=$version" \
    "-X k8s.io/component-base/version.gitMajor=1" \
    "-X k8s.io/component-base/version.gitMinor=$minor" \
    "-X k8s.io/component-base/version.gitTreeState=clean"
}
