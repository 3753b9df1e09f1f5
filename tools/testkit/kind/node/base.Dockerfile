# The kind tier's node base image: Debian, systemd, containerd, runc, crictl and the CNI plugins, with kind's own
# base files (images/base/files of the sigs.k8s.io/kind module, copied into the build context by the bootstrap).
# The packages are the ones kind's base image installs; runc is Debian's (runc's build needs cgo and libseccomp),
# containerd, crictl and the CNI plugins are built from their Go modules by tools/testkit/bootstrap-kind.sh.
# containerd's restrict_oom_score_adj is on: a node container that lacks CAP_SYS_RESOURCE (as on this workplace's
# machines, tools/testkit/kind/docker.sh) cannot lower a process's oom_score_adj, and every pod would fail to start.
ARG DEBIAN_BASE_IMAGE
FROM ${DEBIAN_BASE_IMAGE}
COPY files/ /
COPY bin/containerd bin/containerd-shim-runc-v2 bin/ctr bin/crictl /usr/local/bin/
COPY cni/ /opt/cni/bin/
RUN chmod 0755 /usr/local/bin/* /kind /kind/bin /kind/bin/* \
    && DEBIAN_FRONTEND=noninteractive /usr/local/bin/clean-install \
      systemd conntrack iptables nftables iproute2 ethtool util-linux mount kmod \
      libseccomp2 pigz nfs-common e2fsprogs bash ca-certificates curl jq procps runc \
    && find /lib/systemd/system/sysinit.target.wants/ -name "systemd-tmpfiles-setup.service" -delete \
    && rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* \
       /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/sockets.target.wants/*udev* \
       /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/basic.target.wants/* \
    && echo "ReadKMsg=no" >> /etc/systemd/journald.conf \
    && ln -sf /usr/lib/systemd/systemd /sbin/init \
    && ln -sf /usr/bin/runc /usr/local/sbin/runc \
    && systemctl enable kubelet.service containerd.service undo-mount-hacks.service \
    && systemctl mask systemd-binfmt.service \
    && mkdir -p /etc/kubernetes/manifests \
    && ctr oci spec | jq '.hooks.createContainer[.hooks.createContainer | length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \
       | jq 'del(.process.rlimits)' > /etc/containerd/cri-base.json \
    && sed -i 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' /etc/containerd/config.toml \
    && grep -q 'restrict_oom_score_adj = true' /etc/containerd/config.toml \
    && containerd --version && runc --version && crictl --version
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]
