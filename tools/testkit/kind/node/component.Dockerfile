# One Kubernetes component image (kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy) of the kind
# tier's node image: the binary built from k8s.io/kubernetes at /usr/local/bin, where kubeadm's manifests call it.
# kube-proxy also gets iptables, ipset and conntrack, and iptables-mode: the node's iptables backend, chosen at the
# first call like the node's own entrypoint does.
ARG DEBIAN_BASE_IMAGE
FROM ${DEBIAN_BASE_IMAGE}
ARG COMPONENT
ARG PACKAGES=""
COPY ${COMPONENT} iptables-mode /usr/local/bin/
RUN if [ -n "${PACKAGES}" ]; then \
      apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ${PACKAGES} \
      && apt-get clean && rm -rf /var/lib/apt/lists/* \
      && for t in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do \
           ln -sf /usr/local/bin/iptables-mode /usr/sbin/$t; done; \
    else rm /usr/local/bin/iptables-mode; fi
