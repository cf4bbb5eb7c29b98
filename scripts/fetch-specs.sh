#!/usr/bin/env bash
# The public specs berth's tests validate against (the Docker Engine API swagger of API 1.56
# with its version history, the OCI runtime-spec and image-spec JSON schemas, moby's default
# seccomp profile, the CRI api.proto), downloaded from pinned upstream commits and checked
# against their sha256 sums, into a git-ignored folder (default: .specs/ in the repository),
# laid out as shared/specs is. specsDir() in @berth/testing (packages/testing/src/specs.ts)
# reads them there.
#
#   bash scripts/fetch-specs.sh [--if-missing] [DIR]
#
# --if-missing: do nothing when the specs are already where specsDir() finds them
# (BERTH_SPECS_DIR, shared/specs beside the repository or beside the repository it was cloned
# from, or a complete DIR). Needs curl and sha256sum; exits non-zero, naming the file, when a
# download fails or a checksum differs (nothing half-written is left in DIR).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"

if_missing=0
if [[ "${1:-}" == "--if-missing" ]]; then if_missing=1; shift; fi
dest="${1:-$repo/.specs}"

# The upstream commits (each spec folder's SOURCE in shared/specs names the same).
moby="https://raw.githubusercontent.com/moby/moby/b985e2313a8676e18072b442911fc8f64f17d440"
runtime_spec="https://raw.githubusercontent.com/opencontainers/runtime-spec/6999a89a76a0329f440d5740497bedb9dd431297"
image_spec="https://raw.githubusercontent.com/opencontainers/image-spec/13cff54902ec9ad6320cbc487a685b66fcd67171"
cri_api="https://raw.githubusercontent.com/kubernetes/cri-api/791729b255f0c2d0019d3862ba6ef000c4a30c4d"

# sha256, file in DIR, upstream (one of the bases above), path upstream.
files=(
  "d3dd7ea891f84ed7676c865f55f707e86d047d17644bae192f76db52d04c3f78 docker-engine-api/swagger.yaml moby api/swagger.yaml"
  "41be1ed65b69724a8128c8f1f668386e4ce397bac0deadffe796e94a8996e8a1 docker-engine-api/CHANGELOG.md moby api/docs/CHANGELOG.md"
  "7c87873291f289713ac5df48b1f2010eb6963752bbd6b530416ab99fc37914a8 docker-engine-api/LICENSE moby LICENSE"
  "536529b665dd0972c37bfb569f5d4ac8a53592e7b00752bc39ff063ca9864c74 seccomp/moby-default.json moby vendor/github.com/moby/profiles/seccomp/default.json"
  "7c87873291f289713ac5df48b1f2010eb6963752bbd6b530416ab99fc37914a8 seccomp/LICENSE moby LICENSE"
  "1014c4bb0b4b31e90d182c43b0cf1352f77e280706786b726bcb622e24e44e39 oci-runtime-spec/config-freebsd.json runtime_spec schema/config-freebsd.json"
  "123bb6c446d0054d37f6cc8c569e72cbec5ca5a5a670cf7a77aa30b2834344bc oci-runtime-spec/config-linux.json runtime_spec schema/config-linux.json"
  "220835b554f2bfb990c95700f9077f2f0a0643a7dbfd3b2676ac55e1aad1d1a3 oci-runtime-spec/config-schema.json runtime_spec schema/config-schema.json"
  "7c7babccb26a27b266bc195b25d5832ed9fe412c716f9ce6c9702edcb2207c99 oci-runtime-spec/config-solaris.json runtime_spec schema/config-solaris.json"
  "0c0608b86d1f432a05a20e894c1f13741724d20ccdf9939cb21994b6d3a6808d oci-runtime-spec/config-vm.json runtime_spec schema/config-vm.json"
  "b9ad0c1d38bb6f3bae4a6efeef33c1c1434ae3801d9d4cb435dc7d21ecf02e48 oci-runtime-spec/config-windows.json runtime_spec schema/config-windows.json"
  "409268930b22de85223f4b64ac357e6f70f72e4465e2e8c1051b32589736f4ef oci-runtime-spec/config-zos.json runtime_spec schema/config-zos.json"
  "8317c8ca406bc2c32fe01b720be81c3ff722bdeffab0bc3604399601730537af oci-runtime-spec/defs-freebsd.json runtime_spec schema/defs-freebsd.json"
  "75f7814a39067ce49f250919e546c99fd30f20b140e354a3248ae0c218874783 oci-runtime-spec/defs-linux.json runtime_spec schema/defs-linux.json"
  "b204c703303a98783d13e576f583ab128e88219e77c62b2282361ed2a4f2c352 oci-runtime-spec/defs-vm.json runtime_spec schema/defs-vm.json"
  "c0282c945629cbd124cf0389fd7c6e8d334b05a7a717d0efb860ff2ecd488c22 oci-runtime-spec/defs-windows.json runtime_spec schema/defs-windows.json"
  "75ca042c97bbb3933ab2a216318468aa70b1e3aa82fc6b6a58f4d4d2df6be0fc oci-runtime-spec/defs-zos.json runtime_spec schema/defs-zos.json"
  "8f49fc6537c0c0766cd8bd109037d8db34d9b01d24ee765687bd8674fb128ecd oci-runtime-spec/defs.json runtime_spec schema/defs.json"
  "432aba8857f4bf784c52b27a67d2124de6846e84164637d6967aaa3dbf3b1de2 oci-runtime-spec/features-linux.json runtime_spec schema/features-linux.json"
  "c435f73f02dd9b0f9042e33c6dfa0c1471b97842d4e1786a54c0f94784db8255 oci-runtime-spec/features-schema.json runtime_spec schema/features-schema.json"
  "a096b750c096f43604591061c2692245e5cdf8971be4560512c8b3c28b967f8a oci-runtime-spec/state-schema.json runtime_spec schema/state-schema.json"
  "a964a27c435167bdd78827ff83e4bd4473eca53d583a39598d2f445894a9225d oci-runtime-spec/LICENSE runtime_spec LICENSE"
  "089fcf3cf65a378873ffd5bdf450098de95a0a52def0ef41a57ae33275654ba8 oci-image-spec/config-schema.json image_spec schema/config-schema.json"
  "5db5cba46c2a0560156ab14fa25933a63e206e340b55a78fba7b3dc6386d0497 oci-image-spec/content-descriptor.json image_spec schema/content-descriptor.json"
  "c960b6dd8a65dc3149372988a02c93153d3975c4837c54181640b4fbca6595a5 oci-image-spec/defs-descriptor.json image_spec schema/defs-descriptor.json"
  "23b4abe55230e4bc7f521dc08e5261e9f1aece585059d6581300e9c56eb1420e oci-image-spec/defs.json image_spec schema/defs.json"
  "1a4641a610933fac77db9af7a83664d54883efac180f8867efd0497048e1a82e oci-image-spec/image-index-schema.json image_spec schema/image-index-schema.json"
  "272dbf81baeb72c105298b6d56553de68b4aee676efff5a44d171f0761395545 oci-image-spec/image-layout-schema.json image_spec schema/image-layout-schema.json"
  "040ba9c116f1013175f5be6eb2620d87ca98cd90edc74548ee98ee89394aa4a2 oci-image-spec/image-manifest-schema.json image_spec schema/image-manifest-schema.json"
  "b0a3f39513927db306adabea11d14c23f079d4febcea241d123a68d1a0d45418 oci-image-spec/LICENSE image_spec LICENSE"
  "381aab5cf67425b3c90ab016489de661ccb83ed9f21204066dc5df83b9b83360 cri/api.proto cri_api pkg/apis/runtime/v1/api.proto"
  "b40930bbcf80744c86c46a12bc9da056641d722716c378f5659b9e555ef833e1 cri/LICENSE cri_api LICENSE"
)

has_specs() { [[ -f "$1/docker-engine-api/swagger.yaml" ]]; }

complete() {
  local entry sum file
  for entry in "${files[@]}"; do
    read -r sum file _ _ <<<"$entry"
    [[ -f "$1/$file" ]] && [[ "$(sha256sum "$1/$file" | cut -d' ' -f1)" == "$sum" ]] || return 1
  done
}

if (( if_missing )); then
  candidates=()
  [[ -n "${BERTH_SPECS_DIR:-}" ]] && candidates+=("$BERTH_SPECS_DIR")
  candidates+=("$repo/../shared/specs")
  origin="$(git -C "$repo" config --get remote.origin.url 2>/dev/null || true)"
  [[ "$origin" == /* ]] && candidates+=("$origin/../shared/specs")
  for c in "${candidates[@]}"; do
    if has_specs "$c"; then echo "specs: using $(cd "$c" && pwd)"; exit 0; fi
  done
  if complete "$dest"; then echo "specs: using $dest"; exit 0; fi
fi

command -v curl >/dev/null || { echo "fetch-specs: curl is needed" >&2; exit 1; }
mkdir -p "$dest"
tmp="$(mktemp -d "$dest/.fetch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
for entry in "${files[@]}"; do
  read -r sum file base src <<<"$entry"
  target="$dest/$file"
  if [[ -f "$target" ]] && [[ "$(sha256sum "$target" | cut -d' ' -f1)" == "$sum" ]]; then continue; fi
  url="${!base}/$src"
  part="$tmp/$(echo "$file" | tr / _)"
  if ! curl -fsSL --retry 3 --connect-timeout 20 -o "$part" "$url"; then
    echo "fetch-specs: cannot download $url (for $file)" >&2
    exit 1
  fi
  got="$(sha256sum "$part" | cut -d' ' -f1)"
  if [[ "$got" != "$sum" ]]; then
    echo "fetch-specs: $url has sha256 $got, expected $sum (for $file)" >&2
    exit 1
  fi
  mkdir -p "$(dirname "$target")"
  mv "$part" "$target"
done
echo "specs: fetched into $dest"
