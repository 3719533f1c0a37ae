#!/usr/bin/env bash
# Prepare this host for `pytest -m container` and print the environment it needs
# (`eval "$(bash tests/container/prepare.sh)"`): podman (and runc, whose cgroup handling works
# on hosts where crun refuses a hybrid cgroup tree), a Debian bookworm base image made with
# debootstrap when no image registry is reachable, and pip's certificate and local package
# indexes handed into the build where this host has them. Installs Debian packages: run as
# root, and only where that is wanted (CI does).
set -euo pipefail
BASE=localhost/skydetect-base:bookworm
need=()
for tool in podman debootstrap runc; do
    command -v "$tool" >/dev/null || need+=("$tool")
done
if [ "${#need[@]}" -gt 0 ]; then
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman debootstrap runc uidmap >&2
fi
if ! podman image exists "$BASE"; then
    root=$(mktemp -d)
    debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >&2
    tar -C "$root" -c . | podman import - "$BASE" >&2
    rm -rf "$root"
fi
limits="--ulimit nofile=20000:20000 --ulimit nproc=4096:4096"
build="--runtime runc --network host $limits --build-arg BASE_IMAGE=$BASE"
pip_options=""
if [ -r /etc/ssl/certs/ca-certificates.crt ]; then
    build="$build --volume /etc/ssl/certs/ca-certificates.crt:/run/host-ca.crt:ro"
    pip_options="--cert /run/host-ca.crt"
fi
for index in /opt/pypi /opt/pypi-more; do
    if [ -d "$index/simple" ]; then
        build="$build --volume $index:$index:ro"
        pip_options="$pip_options --extra-index-url file://$index/simple"
    fi
done
echo "export SKYDETECT_PODMAN='podman --runtime runc'"
echo "export SKYDETECT_PODMAN_BUILD_ARGS=\"$build --build-arg PIP_OPTIONS='$pip_options'\""
echo "export SKYDETECT_PODMAN_RUN_ARGS='--network host $limits'"
