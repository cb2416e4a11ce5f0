#!/bin/sh
# Builds a tiny OCI image archive from the host's static busybox, without a registry.
#   build-image.sh OUT.tar IMAGE_NAME WORKDIR
# CMD_JSON (default ["/bin/sh"]) is the image's command, as a JSON array.
# The layer is an uncompressed, reproducible tar (sorted names, mtime 0, root-owned).
set -eu
out=$1 name=$2 work=$3
busybox=${BUSYBOX:-/bin/busybox}
cmd=${CMD_JSON:-'["/bin/sh"]'}

rm -rf "$work" && mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/tmp" "$work/layout/blobs/sha256"
cp "$busybox" "$work/rootfs/bin/busybox"
for applet in sh echo cat ls ps uname sleep true false env id hostname; do
  ln -s busybox "$work/rootfs/bin/$applet"
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
