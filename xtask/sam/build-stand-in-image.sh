#!/bin/sh
# Builds an offline stand-in for public.ecr.aws/lambda/provided:al2023 from local Debian
# packages only (busybox-static for SAM's `RUN mv && chmod` step, the host's glibc and
# libgcc_s for cargo-lambda's gnu binaries) and `docker import`s it. `cargo xtask test` runs it
# when the image is missing. Users with registry access never need it.
#
# Usage: build-stand-in-image.sh [image-tag] [work-dir] [label: herald.stand-in value]
set -eu
if [ "$(uname -m)" != x86_64 ]; then
  echo "the stand-in image is built for x86_64 hosts; on $(uname -m) use the real image" >&2
  exit 1
fi

TAG="${1:-herald/lambda-provided-al2023:local}"
WORK="${2:-$(pwd)/.herald/stand-in-image}"
LABEL="${3:-manual}"
ROOT="$WORK/rootfs"

rm -rf "$WORK/rootfs" "$WORK/bb"
mkdir -p "$WORK" "$ROOT"

# --- 1. busybox (static) -------------------------------------------------------
ARCH="$(dpkg --print-architecture)"
mkdir -p "$WORK/debs"
if ! (cd "$WORK/debs" && apt-get download busybox-static >/dev/null 2>&1); then
  apt-get update >/dev/null
  (cd "$WORK/debs" && apt-get download busybox-static)
fi
DEB="$(ls "$WORK"/debs/busybox-static_*_"$ARCH".deb | head -n1)"
dpkg-deb -x "$DEB" "$WORK/bb"

# usr-merged layout, like AL2023 (and Debian 12)
mkdir -p "$ROOT/usr/bin" "$ROOT/usr/sbin" "$ROOT/usr/lib/x86_64-linux-gnu" "$ROOT/usr/lib64" \
         "$ROOT/usr/local/bin"
ln -s usr/bin   "$ROOT/bin"
ln -s usr/sbin  "$ROOT/sbin"
ln -s usr/lib   "$ROOT/lib"
ln -s usr/lib64 "$ROOT/lib64"

install -m 0755 "$WORK/bb/bin/busybox" "$ROOT/usr/bin/busybox"
for applet in $("$ROOT/usr/bin/busybox" --list); do
  [ "$applet" = busybox ] && continue
  [ -e "$ROOT/usr/bin/$applet" ] || ln -s busybox "$ROOT/usr/bin/$applet"
done

# --- 2. glibc runtime + libgcc_s from the host (what a cargo-lambda gnu binary needs) ---
for f in $(dpkg -L libc6 libgcc-s1 | grep -E '^/lib/x86_64-linux-gnu/[^/]+\.so[.0-9]*$'); do
  cp -a "$f" "$ROOT/usr/lib/x86_64-linux-gnu/"
done
# ELF interpreter path baked into x86_64 gnu binaries: /lib64/ld-linux-x86-64.so.2
ln -s ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$ROOT/usr/lib64/ld-linux-x86-64.so.2"
# AL2023 keeps libs in /usr/lib64: provide the usual names there too
for l in libc.so.6 libm.so.6 libgcc_s.so.1 libpthread.so.0 libdl.so.2 librt.so.1 libresolv.so.2 \
         libutil.so.1 libnss_files.so.2 libnss_dns.so.2; do
  ln -s ../lib/x86_64-linux-gnu/$l "$ROOT/usr/lib64/$l"
done
mkdir -p "$ROOT/etc/ld.so.conf.d"
printf '/usr/lib/x86_64-linux-gnu\n/usr/lib64\n' > "$ROOT/etc/ld.so.conf.d/x86_64.conf"
echo 'include /etc/ld.so.conf.d/*.conf' > "$ROOT/etc/ld.so.conf"
ldconfig -r "$ROOT"

# --- 3. minimal /etc, Lambda dirs -----------------------------------------------
cat > "$ROOT/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/:/sbin/nologin
sbx_user1051:x:993:990::/home/sbx_user1051:/sbin/nologin
EOF
cat > "$ROOT/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
sbx_user1051:x:990:
EOF
printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$ROOT/etc/nsswitch.conf"
cat > "$ROOT/etc/os-release" <<'EOF'
NAME="Amazon Linux (offline stand-in: busybox + Debian glibc)"
VERSION="2023"
ID="amzn"
VERSION_ID="2023"
PRETTY_NAME="Lambda provided.al2023 stand-in"
EOF
touch "$ROOT/etc/hosts" "$ROOT/etc/resolv.conf" "$ROOT/etc/hostname"
# CA bundle (from Debian's ca-certificates) where AL2023 and Debian keep it: the AWS SDK's
# TLS setup refuses to start without root certificates, even when it only talks plain HTTP.
CA=/etc/ssl/certs/ca-certificates.crt
[ -s "$CA" ] || { apt-get install -y ca-certificates >/dev/null; }
mkdir -p "$ROOT/etc/pki/tls/certs" "$ROOT/etc/ssl/certs"
cp "$CA" "$ROOT/etc/pki/tls/certs/ca-bundle.crt"
cp "$CA" "$ROOT/etc/ssl/certs/ca-certificates.crt"
mkdir -p "$ROOT/tmp" "$ROOT/var/task" "$ROOT/var/runtime" "$ROOT/var/rapid" "$ROOT/var/lang/bin" \
         "$ROOT/opt" "$ROOT/root" "$ROOT/proc" "$ROOT/sys" "$ROOT/dev"
chmod 1777 "$ROOT/tmp"

# convenience entrypoint for plain `docker run` (SAM overrides ENTRYPOINT with /var/rapid/aws-lambda-rie)
cat > "$ROOT/lambda-entrypoint.sh" <<'EOF'
#!/bin/sh
if [ -x /var/rapid/aws-lambda-rie ] && [ -z "${AWS_LAMBDA_RUNTIME_API:-}" ]; then
  exec /var/rapid/aws-lambda-rie "$@"
fi
exec "$@"
EOF
chmod 0755 "$ROOT/lambda-entrypoint.sh"

# --- 4. tar + docker import ---------------------------------------------------------
tar --numeric-owner --owner=0 --group=0 -C "$ROOT" -cf "$WORK/rootfs.tar" .
OLD_ID="$(docker image inspect -f '{{.Id}}' "$TAG" 2>/dev/null || true)"
docker rmi -f "$TAG" >/dev/null 2>&1 || true
# SAM derives "<repo>:rapid-x86_64" from the --invoke-image and never rebuilds it while it exists
# (with --skip-pull-image). Drop it so the next sam run rebuilds it on top of the fresh base.
docker rmi -f "${TAG%:*}:rapid-x86_64" >/dev/null 2>&1 || true
docker import \
  --change 'ENV PATH=/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin' \
  --change 'ENV LD_LIBRARY_PATH=/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib' \
  --change 'ENV LANG=en_US.UTF-8' \
  --change 'ENV TZ=:/etc/localtime' \
  --change 'ENV LAMBDA_TASK_ROOT=/var/task' \
  --change 'ENV LAMBDA_RUNTIME_DIR=/var/runtime' \
  --change 'WORKDIR /var/task' \
  --change 'ENTRYPOINT ["/lambda-entrypoint.sh"]' \
  --change "LABEL herald.stand-in=$LABEL" \
  --message 'offline stand-in for public.ecr.aws/lambda/provided:al2023' \
  "$WORK/rootfs.tar" "$TAG"
# Optional: also answer to the default name SAM uses when no --invoke-image is given
# (then `sam local invoke --skip-pull-image` works without --invoke-image).
if [ "${ALIAS_ECR_NAME:-0}" = 1 ]; then
  docker rmi -f public.ecr.aws/lambda/provided:al2023-rapid-x86_64 >/dev/null 2>&1 || true
  docker tag "$TAG" public.ecr.aws/lambda/provided:al2023-x86_64
fi
# remove the previous base image if nothing references it any more (ignore errors)
[ -n "$OLD_ID" ] && docker rmi "$OLD_ID" >/dev/null 2>&1 || true
ls -l "$WORK/rootfs.tar"
docker image ls "$TAG"
