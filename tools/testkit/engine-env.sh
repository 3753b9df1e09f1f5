# shellcheck shell=bash
# Source this (bash/zsh) after tools/testkit/bootstrap-engine.sh: puts the engine tier on PATH and keeps Pulumi offline.
#   source tools/testkit/engine-env.sh
# Honours AMBIENT_MESH_ENGINE_CACHE (default ~/.cache/ambient-mesh-engine), like the bootstrap script.
AMBIENT_MESH_ENGINE_CACHE=${AMBIENT_MESH_ENGINE_CACHE:-$HOME/.cache/ambient-mesh-engine}
export AMBIENT_MESH_ENGINE_CACHE
case ":$PATH:" in
  *":$AMBIENT_MESH_ENGINE_CACHE/bin:"*) ;;
  *) export PATH="$AMBIENT_MESH_ENGINE_CACHE/bin:$PATH" ;;
esac
export PULUMI_HOME="$AMBIENT_MESH_ENGINE_CACHE/pulumi-home"
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
export PULUMI_IGNORE_AMBIENT_PLUGINS=true
export PULUMI_CONFIG_PASSPHRASE="${PULUMI_CONFIG_PASSPHRASE-}"
# Tool paths, for kwokctl's --*-binary flags and the engine tests.
export ENGINE_PULUMI="$AMBIENT_MESH_ENGINE_CACHE/bin/pulumi"
export ENGINE_KWOKCTL="$AMBIENT_MESH_ENGINE_CACHE/bin/kwokctl"
export ENGINE_KWOK="$AMBIENT_MESH_ENGINE_CACHE/bin/kwok"
export ENGINE_ETCD="$AMBIENT_MESH_ENGINE_CACHE/bin/etcd"
export ENGINE_KUBE_APISERVER="$AMBIENT_MESH_ENGINE_CACHE/bin/kube-apiserver"
export ENGINE_KUBE_CONTROLLER_MANAGER="$AMBIENT_MESH_ENGINE_CACHE/bin/kube-controller-manager"
export ENGINE_KUBE_SCHEDULER="$AMBIENT_MESH_ENGINE_CACHE/bin/kube-scheduler"
