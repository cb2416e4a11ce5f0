#!/bin/sh
# Builds a small OCI image archive from the host's files, without a registry: the static
# busybox (/bin/sh and applets in /bin) and a few dynamically linked Debian programs in /usr/bin
# with the libraries `ldd` names and the dynamic loader, at the paths the host has them.
#   build-image.sh OUT.tar IMAGE_NAME WORKDIR
# CMD_JSON (default ["/bin/sh"]) is the image's command, as a JSON array.
# DYNAMIC (default "/bin/bash /usr/bin/env /usr/bin/cat") are the dynamic programs; each must exist.
# The layer is an uncompressed, reproducible tar (sorted names, mtime 0, root-owned).
set -eu
out=$1 name=$2 work=$3
busybox=${BUSYBOX:-/bin/busybox}
cmd=${CMD_JSON:-'["/bin/sh"]'}
dynamic=${DYNAMIC:-/bin/bash /usr/bin/env /usr/bin/cat}

rm -rf "$work" && mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/tmp" "$work/layout/blobs/sha256"
cp "$busybox" "$work/rootfs/bin/busybox"
for applet in sh echo cat ls ps uname sleep true false env id hostname; do
  ln -s busybox "$work/rootfs/bin/$applet"
done
mkdir -p "$work/rootfs/usr/bin"
for prog in $dynamic; do
  cp -L "$prog" "$work/rootfs/usr/bin/$(basename "$prog")"
  # ldd lines: "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" and "/lib64/ld-linux-x86-64.so.2 (0x...)".
  for lib in $(ldd "$prog" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }'); do
    mkdir -p "$work/rootfs$(dirname "$lib")"
    cp -L "$lib" "$work/rootfs$lib"
  done
done
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$work/rootfs/etc/passwd"
printf 'root:x:0:\n' > "$work/rootfs/etc/group"

layer=$work/layer.tar
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work/rootfs" -cf "$layer" .
put() { # file -> prints "digest size", stores the blob
  d=$(sha256sum "$1" | cut -d' ' -f1)
  cp "$1" "$work/layout/blobs/sha256/$d"
  echo "$d $(stat -c %s "$1")"
}
set -- $(put "$layer"); layer_digest=$1 layer_size=$2

cat > "$work/config.json" <<JSON
{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":$cmd,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:$layer_digest"]}}
JSON
set -- $(put "$work/config.json"); config_digest=$1 config_size=$2

cat > "$work/manifest.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$config_digest","size":$config_size},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:$layer_digest","size":$layer_size}]}
JSON
set -- $(put "$work/manifest.json"); manifest_digest=$1 manifest_size=$2

cat > "$work/layout/index.json" <<JSON
{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:$manifest_digest","size":$manifest_size,"annotations":{"io.containerd.image.name":"$name","org.opencontainers.image.ref.name":"latest"}}]}
JSON
printf '{"imageLayoutVersion":"1.0.0"}' > "$work/layout/oci-layout"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work/layout" -cf "$out" .
