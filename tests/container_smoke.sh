#!/usr/bin/env bash
# Container smoke test for containers/Dockerfile, without a Docker engine or registry access:
#
#   1. installs podman, runc and debootstrap when missing (apt; needs root),
#   2. builds (or reuses) a minimal Debian bookworm base image, localhost/debian:bookworm,
#      with debootstrap from the host's Debian mirror,
#   3. builds the sci2cl image from the repository's Dockerfile on that base and tags it the
#      way the modules reference it (ghcr.io/sci2cl-nf/sci2cl:<version>-cpu),
#   4. runs it as an arbitrary non-root uid: `sci2cl --version`, and the CLI end to end on
#      tests/data/pbmc_arc with a read-only root filesystem (what singularity/apptainer give),
#   5. runs `nextflow run . -profile test,podman` with that image (launcher from
#      tests/get_nextflow.sh),
#   and prints the build time, the image size and the run times (also in $SMOKE_DIR/summary.tsv).
#
# Downloads are paid once per host: the Dockerfile keeps the wheels in a wheelhouse on its
# build cache mount, which buildah keeps in /var/tmp/buildah-cache/root/.cache/pip/wheelhouse
# (pip's own HTTP cache, ~/.cache/pip, stays empty behind proxies that drop Cache-Control, as
# on the sandbox this was written on), and the layers are reused by podman's build cache.
#
# Usage: tests/container_smoke.sh [--rebuild-base] [--no-build] [--skip-cli] [--skip-nextflow]
#
# Torch variant (SCI2CL_TORCH_VARIANT=auto|cpu|cuda, default auto): the real CPU image
# installs torch X+cpu from https://download.pytorch.org/whl/cpu. Where that index is not
# reachable (auto probes it), the image is built with the PyPI torch + CUDA runtime wheels
# instead - the CUDA image - and tagged both <version>-cuda and <version>-cpu; torch from
# PyPI does not import without its nvidia-* libraries, so they cannot be left out.
#
# Environment (all optional):
#   SCI2CL_SMOKE_DIR     work dir: base rootfs, outputs, logs     (/var/tmp/sci2cl-smoke)
#   SCI2CL_BASE_IMAGE    base image; localhost/* is made here     (localhost/debian:bookworm)
#   SCI2CL_DEBIAN_MIRROR Debian mirror for debootstrap            (the host's apt sources)
#   SCI2CL_IMAGE_REPO    image name                               (ghcr.io/sci2cl-nf/sci2cl)
#   SCI2CL_CA_BUNDLE     CA bundle given to pip in the build as a secret
#                        (/etc/ssl/certs/ca-certificates.crt when present)
#   SCI2CL_SMOKE_USER    uid:gid for the runs                     (4242:4242)
#   SCI2CL_BUILD_FLAGS   extra `podman build` flags, e.g. --no-cache
#   PIP_INDEX_URL        pip index mirror (else the host's `pip config get global.index-url`)
#
# podman quirks of sandboxed hosts (crun unusable, low hard nofile limit) are handled with the
# global `--runtime runc` and `--ulimit` flags here, and for Nextflow's podman calls with a
# containers.conf ($SMOKE_DIR/containers.conf, exported as CONTAINERS_CONF), so the pipeline's
# podman profile stays host-neutral.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

SMOKE_DIR="${SCI2CL_SMOKE_DIR:-/var/tmp/sci2cl-smoke}"
BASE_IMAGE="${SCI2CL_BASE_IMAGE:-localhost/debian:bookworm}"
IMAGE_REPO="${SCI2CL_IMAGE_REPO:-ghcr.io/sci2cl-nf/sci2cl}"
VARIANT="${SCI2CL_TORCH_VARIANT:-auto}"
CA_BUNDLE="${SCI2CL_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
RUN_USER="${SCI2CL_SMOKE_USER:-4242:4242}"
SUITE=bookworm

rebuild_base=0; do_build=1; do_cli=1; do_nf=1
for arg in "$@"; do
    case "$arg" in
        --rebuild-base)  rebuild_base=1 ;;
        --no-build)      do_build=0 ;;
        --skip-cli)      do_cli=0 ;;
        --skip-nextflow) do_nf=0 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $arg (see --help)" >&2; exit 2 ;;
    esac
done

log()  { printf '[container_smoke %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die()  { log "FAIL: $*"; exit 1; }
trap 'log "FAIL: line $LINENO: $BASH_COMMAND (exit $?)"' ERR
mkdir -p "$SMOKE_DIR"
exec 9>"$SMOKE_DIR/.lock"
flock -n 9 || die "another container_smoke.sh is running (lock $SMOKE_DIR/.lock)"

SUMMARY="$SMOKE_DIR/summary.tsv"
printf 'step\tseconds\tnote\n' > "$SUMMARY"
record() { printf '%s\t%s\t%s\n' "$1" "$2" "${3:-}" >> "$SUMMARY"; log "$1: ${2}s ${3:-}"; }

VERSION="$(sed -n 's/^version *= *"\(.*\)"/\1/p' pyproject.toml | head -1)"
[[ -n "$VERSION" ]] || die "no version in pyproject.toml"
IMAGE="$IMAGE_REPO:$VERSION-cpu"

# podman with the runtime flags this kind of host needs, for our own calls
PODMAN=(podman --runtime runc)
ULIMITS=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
export CONTAINERS_CONF="$SMOKE_DIR/containers.conf"
cat > "$CONTAINERS_CONF" <<'EOF'
# written by tests/container_smoke.sh: for the podman calls Nextflow makes
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
EOF

# --- 1. tools ---------------------------------------------------------------------------------
t0=$SECONDS
missing=()
for tool in podman runc debootstrap; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [[ ! -e /usr/share/keyrings/debian-archive-keyring.gpg ]]; then missing+=(debian-archive-keyring); fi
if (( ${#missing[@]} )); then
    [[ $EUID -eq 0 ]] || die "missing ${missing[*]}; run as root or install them"
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        podman runc debootstrap debian-archive-keyring >/dev/null
fi
record tools $((SECONDS - t0)) "$(podman --version), runc $(runc --version | sed -n '1s/runc version //p')"

# --- 2. base image ----------------------------------------------------------------------------
apt_uri() {  # first URI of the host's apt sources whose path matches $1 (debian | debian-security)
    local re="$1" f
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f "$f" ]] && awk -v re="$re" '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i ~ re) { print $i; exit } }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f "$f" ]] && awk -v re="$re" '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ re) { print $i; exit } }' "$f"
    done
    return 0
}
t0=$SECONDS
if [[ "$BASE_IMAGE" == localhost/* ]] && { (( rebuild_base )) || ! podman image exists "$BASE_IMAGE"; }; then
    mirror="${SCI2CL_DEBIAN_MIRROR:-$(apt_uri '/debian/?$' | head -1)}"; mirror="${mirror:-http://deb.debian.org/debian}"
    security="$(apt_uri 'debian-security/?$' | head -1)"; security="${security:-http://deb.debian.org/debian-security}"
    rootfs="$SMOKE_DIR/rootfs-$SUITE"
    log "debootstrap --variant=minbase $SUITE from $mirror"
    rm -rf "$rootfs"
    debootstrap --variant=minbase "$SUITE" "$rootfs" "$mirror" > "$SMOKE_DIR/debootstrap.log" 2>&1 \
        || { tail -20 "$SMOKE_DIR/debootstrap.log" >&2; die "debootstrap failed"; }
    rm -f "$rootfs/etc/apt/sources.list"
    cat > "$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log
    tar --numeric-owner -C "$rootfs" -c . | podman import \
        --change 'CMD ["bash"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' --quiet - "$BASE_IMAGE" >/dev/null
    rm -rf "$rootfs"
    record base_image $((SECONDS - t0)) "debootstrap $SUITE -> $BASE_IMAGE"
else
    podman image exists "$BASE_IMAGE" || podman pull -q "$BASE_IMAGE" >/dev/null
    record base_image $((SECONDS - t0)) "reused $BASE_IMAGE"
fi

# --- 3. build ---------------------------------------------------------------------------------
if [[ "$VARIANT" == auto ]]; then
    if curl -fsS -m 15 -o /dev/null https://download.pytorch.org/whl/cpu/torch/ 2>/dev/null; then
        VARIANT=cpu
    else
        VARIANT=cuda
        log "download.pytorch.org is not reachable: building with PyPI's torch + CUDA wheels"
    fi
fi
tags=(-t "$IMAGE")
[[ "$VARIANT" == cuda ]] && tags+=(-t "$IMAGE_REPO:$VERSION-cuda")

if (( do_build )); then
    t0=$SECONDS
    build_args=(
        --build-arg "BASE_IMAGE=$BASE_IMAGE"
        --build-arg "TORCH_VARIANT=$VARIANT"
        --build-arg "VERSION=$VERSION"
    )
    # labels that change per build go in as --label: buildah reuses a cached LABEL step even
    # when the build args it expands have changed
    build_args+=(
        --label "org.opencontainers.image.revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)"
        --label "org.opencontainers.image.created=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
        --label "org.opencontainers.image.version=$VERSION"
    )
    index_url="${PIP_INDEX_URL:-$(python3 -m pip config get global.index-url 2>/dev/null || true)}"
    [[ -n "$index_url" ]] && build_args+=(--build-arg "PIP_INDEX_URL=$index_url")
    [[ -s "$CA_BUNDLE" ]] && build_args+=(--secret "id=cacert,src=$CA_BUNDLE")
    read -r -a extra_flags <<< "${SCI2CL_BUILD_FLAGS:-}"
    log "building $IMAGE (TORCH_VARIANT=$VARIANT, log: $SMOKE_DIR/build.log)"
    if ! "${PODMAN[@]}" build --network host "${ULIMITS[@]}" \
            -f containers/Dockerfile "${build_args[@]}" ${extra_flags[@]+"${extra_flags[@]}"} \
            "${tags[@]}" . > "$SMOKE_DIR/build.log" 2>&1; then
        tail -30 "$SMOKE_DIR/build.log" >&2; die "image build failed"
    fi
    record build $((SECONDS - t0)) "TORCH_VARIANT=$VARIANT"
fi
podman image exists "$IMAGE" || die "$IMAGE does not exist (build it: drop --no-build)"
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
record image_size 0 "$(awk -v b="$size" 'BEGIN { printf "%.2f GB (%.0f bytes)", b / 1e9, b }')"
podman history --no-trunc --format '{{.Size}}\t{{.CreatedBy}}' "$IMAGE" \
    | sed -E 's/\t\|[0-9]+ ([A-Za-z_]+=[^ ]* )*/\t/; s/\t\/bin\/sh -c (#\(nop\) )?/\t/; s/  +/ /g' \
    | awk -F'\t' '$1 !~ /^0 ?B$/ { printf "  %-10s %.100s\n", $1, $2 }' > "$SMOKE_DIR/layers.txt"
log "layers:"; cat "$SMOKE_DIR/layers.txt" >&2

# --- 4. the image as a non-root uid -------------------------------------------------------------
RUN=("${PODMAN[@]}" run --rm --network none "${ULIMITS[@]}" --user "$RUN_USER")
t0=$SECONDS
out=$("${RUN[@]}" "$IMAGE" sci2cl --version) || die "sci2cl --version failed"
record version $((SECONDS - t0)) "$out"
# shellcheck disable=SC2016  # expanded inside the container
"${RUN[@]}" "$IMAGE" bash -euc '
    echo "uid=$(id -u) HOME=$HOME variant=$SCI2CL_TORCH_VARIANT"
    ps -p $$ -o pid=,comm= >/dev/null            # Nextflow needs ps (procps)
    touch "$HOME/probe"                          # HOME is writable for any uid
    python -c "
import os, tempfile, torch, matplotlib, numba
x = torch.randn(64, 8, requires_grad=True); (x @ x.T).sum().backward()
assert os.access(matplotlib.get_cachedir(), os.W_OK), matplotlib.get_cachedir()
print(\"torch\", torch.__version__, \"cuda build\", torch.version.cuda, \"| mpl cache\", matplotlib.get_cachedir())
"' || die "non-root environment check failed"

if (( do_cli )); then
    "${RUN[@]}" "$IMAGE" sci2cl run --help 2>/dev/null | grep -q -- '--output-prefix' \
        || die "'sci2cl run' (with --output-prefix) is not available in the image yet"
    cli_out="$SMOKE_DIR/cli-out"
    rm -rf "$cli_out"; mkdir -p "$cli_out"; chmod 1777 "$cli_out"
    t0=$SECONDS
    # read-only root filesystem + tmpfs /tmp: the situation under singularity/apptainer
    "${RUN[@]}" --read-only --tmpfs /tmp:rw,exec,size=2g \
        -v "$REPO/tests/data:/data:ro" -v "$cli_out:/out" "$IMAGE" \
        sci2cl run --input /data/pbmc_arc/outs --output-prefix /out/pbmc --max-epochs 2 \
        > "$SMOKE_DIR/cli.log" 2>&1 || { tail -30 "$SMOKE_DIR/cli.log" >&2; die "sci2cl run failed in the container"; }
    record cli_run $((SECONDS - t0)) "sci2cl run --max-epochs 2 on tests/data/pbmc_arc (uid $RUN_USER, read-only rootfs)"
    for f in pbmc.embeddings.parquet pbmc.h5mu; do
        [[ -s "$cli_out/$f" ]] || die "missing output $f (have: $(cd "$cli_out" && echo *))"
    done
    [[ "$(stat -c %u "$cli_out/pbmc.embeddings.parquet")" == "${RUN_USER%%:*}" ]] || die "outputs not owned by $RUN_USER"
    "${RUN[@]}" -v "$cli_out:/out:ro" "$IMAGE" python -c "
import pyarrow.parquet as pq, mudata
t = pq.read_table('/out/pbmc.embeddings.parquet'); m = mudata.read_h5mu('/out/pbmc.h5mu')
assert t.num_rows == m.n_obs > 0 and 'barcode' in t.column_names, (t.num_rows, m.n_obs, t.column_names)
print('embeddings', t.num_rows, 'x', t.num_columns, '| h5mu', {k: v.shape for k, v in m.mod.items()})
" || die "outputs are not readable / consistent"
fi

# --- 5. the pipeline under podman ---------------------------------------------------------------
if (( do_nf )); then
    nxf="$(tests/get_nextflow.sh)" || die "tests/get_nextflow.sh could not provide nextflow"
    nf_dir="$SMOKE_DIR/nextflow"
    rm -rf "$nf_dir"; mkdir -p "$nf_dir"
    t0=$SECONDS
    ( cd "$nf_dir" && NXF_OFFLINE=true NXF_DISABLE_CHECK_LATEST=true NXF_ANSI_LOG=false \
        "$nxf" run "$REPO" -profile test,podman --outdir "$nf_dir/results" -work-dir "$nf_dir/work" \
        > "$nf_dir/nextflow.stdout" 2>&1 ) \
        || { tail -40 "$nf_dir/nextflow.stdout" >&2; die "nextflow run -profile test,podman failed (log: $nf_dir/.nextflow.log)"; }
    record nextflow_test_podman $((SECONDS - t0)) "nextflow run . -profile test,podman"
    n=$(find "$nf_dir/results" -name '*.embeddings.parquet' | wc -l)
    (( n > 0 )) || die "no *.embeddings.parquet under $nf_dir/results"
    grep -l "podman run" "$nf_dir"/work/*/*/.command.run 2>/dev/null | xargs grep -l -- "$IMAGE" >/dev/null \
        || die "tasks did not run in $IMAGE under podman"
    log "nextflow: $n embeddings file(s) in $nf_dir/results"
fi

log "summary ($SUMMARY):"
column -t -s $'\t' "$SUMMARY" >&2 2>/dev/null || cat "$SUMMARY" >&2
log "OK"
