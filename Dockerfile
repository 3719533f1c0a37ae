# skydetect: the workflow, its library and every pinned dependency in one image.
#
# The image the Snakefile names (`containerized:`); Snakemake runs each job in it with
#     snakemake --cores all --software-deployment-method apptainer
# (docs/container.md). The Python packages are those of pyproject.toml, pinned to the same
# versions (tests/test_container.py keeps the two lists equal).
#
# BASE_IMAGE: any Debian bookworm or python:3.11 image, e.g. the default below, or
# python:3.11-slim, or a local base made without an image registry:
#     debootstrap --variant=minbase bookworm rootfs http://deb.debian.org/debian
#     tar -C rootfs -c . | podman import - localhost/skydetect-base:bookworm
#     podman build --build-arg BASE_IMAGE=localhost/skydetect-base:bookworm -t skydetect .
ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim
FROM ${BASE_IMAGE}

ENV DEBIAN_FRONTEND=noninteractive \
    LANG=C.UTF-8 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# Python 3.11 with venv, and CA certificates for the downloads of the real-data mode: taken
# from Debian unless the base image already has them (python:3.11 images do).
RUN if ! python3 -c "import venv, ensurepip" 2>/dev/null \
        || [ ! -e /etc/ssl/certs/ca-certificates.crt ]; then \
        apt-get update \
        && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && python3 -m venv /opt/venv

# Extra pip options for a build behind a TLS-intercepting proxy or with a local package index,
# e.g. --build-arg PIP_OPTIONS="--cert /mnt/ca.crt --extra-index-url file:///mnt/pypi/simple"
# (with the files mounted by `podman build --volume`).
ARG PIP_OPTIONS=""

# pyproject.toml: [project.dependencies], then the `ml` and `workflow` extras.
RUN pip install $PIP_OPTIONS \
        numpy==2.4.6 \
        scipy==1.17.1 \
        healpy==1.20.1 \
        astropy==8.0.2 \
        reproject==0.21.0 \
        h5py==3.14.0 \
        matplotlib==3.11.2 \
        scikit-learn==1.9.1 \
        jsonschema==4.26.0 \
        PyYAML==6.0.3 \
        tqdm==4.70.1 \
    && pip install $PIP_OPTIONS \
        tensorflow==2.21.0 \
        tf-keras==2.21.0 \
        keras-unet-collection==0.1.13 \
        optuna==5.0.0 \
    && pip install $PIP_OPTIONS \
        snakemake==9.27.1 \
        snakemake-executor-plugin-slurm==2.8.0

# The workflow itself (Snakefile, rules, scripts, config, envs, profiles, tests' tiny config)
# and its library, installed without touching the pinned dependencies above.
COPY . /opt/skydetect
RUN pip install $PIP_OPTIONS --no-deps /opt/skydetect \
    && python -c "import skydetect, tensorflow, healpy, snakemake"

WORKDIR /work
CMD ["snakemake", "--snakefile", "/opt/skydetect/Snakefile", "--cores", "all"]
