#!/usr/bin/env bash
# Builds (and with --push, pushes) the image of every service (serving included; its CUDA build
# is Dockerfile.serving-cuda).
#   deploy/docker/build-images.sh [--push] [REGISTRY_PREFIX] [TAG]
# Needs Docker or a compatible builder (podman works with DOCKER=podman).
set -euo pipefail
cd "$(dirname "$0")/../.."
push=false
if [[ "${1:-}" == "--push" ]]; then push=true; shift; fi
prefix="${1:-ghcr.io/tuneline}"
tag="${2:-$(./mvnw -B -q help:evaluate -Dexpression=project.version -DforceStdout | sed 's/-SNAPSHOT$//')}"
docker="${DOCKER:-docker}"

./mvnw -B package -DskipTests
for service in ingestion preprocessing training evaluation registry serving; do
  image="$prefix/$service:$tag"
  "$docker" build -f deploy/docker/Dockerfile.jvm --build-arg SERVICE="$service" -t "$image" .
  if $push; then "$docker" push "$image"; fi
  echo "built $image"
done
