# syntax=docker/dockerfile:1.7
#
# Images of sandpit: the controller and the node agent, from one build.
#   docker buildx build --target controller -t sandpit-controller .
#   docker buildx build --target agent      -t sandpit-agent .
# .github/workflows/images.yaml builds both for linux/amd64 and linux/arm64.
#
# The bases are pinned to exact releases here; CI (or Renovate/Dependabot, see
# .github/dependabot.yml) should add the @sha256 digest of each, which could not
# be resolved on the machine this file was written on (no registry access).
ARG NODE_VERSION=20.20.2
ARG DEBIAN_RELEASE=bookworm
ARG NODE_IMAGE=docker.io/library/node:${NODE_VERSION}-${DEBIAN_RELEASE}-slim

# ---------------------------------------------------------------------------
# build: TypeScript to JavaScript. Platform-independent, so it runs on the
# builder's own platform even for a cross build.
FROM --platform=$BUILDPLATFORM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm \
    npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json ./
COPY lib/ lib/
COPY crds/ crds/
COPY controllers/ controllers/
COPY node-agent/ node-agent/
RUN npx tsc -p tsconfig.json \
    && rm -rf dist/test dist/bench dist/hack \
    && find dist -name '*.test.js' -delete -o -name '*.test.js.map' -delete

# ---------------------------------------------------------------------------
# native: sandpit-init, the sandbox PID 1 and container shim (hack/native.sh;
# no libc, so only a compiler is needed). Built for the target platform, on
# the Node base only because that one is pinned already.
FROM ${NODE_IMAGE} AS native
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends gcc && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY hack/native.sh hack/native.sh
COPY node-agent/native/ node-agent/native/
RUN bash hack/native.sh /out

# ---------------------------------------------------------------------------
# deps: production dependencies for the target platform (koffi's native
# prebuilt comes from the platform's optional dependency).
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev --no-audit --no-fund \
    && rm -rf node_modules/@koromix/*/musl_*

# ---------------------------------------------------------------------------
# runtime: what both images share. npm, npx, corepack and yarn are removed:
# nothing installs packages at run time.
FROM ${NODE_IMAGE} AS runtime
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
      /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
      /opt/yarn-* /usr/local/bin/yarn /usr/local/bin/yarnpkg
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules/ node_modules/
COPY --from=build /src/dist/ dist/
COPY package.json ./
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.source="https://github.com/sandpit-dev/sandpit" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"

# ---------------------------------------------------------------------------
# agent: runs as root on the host's namespaces (see the chart's DaemonSet).
#   tini       PID 1 of the agent container (-s: subreaper when hostPID makes it not PID 1)
#   catatonit  no longer the sandboxes' PID 1 (that is sandpit-init); kept as a small init for tools
#   nftables   libnftables (JSON API through koffi) and the nft fallback
#   iproute2   `ip` for diagnosis (the agent itself speaks netlink)
#   kmod       modprobe of overlay, br_netfilter, nf_tables when absent
#   conntrack  flushing a torn-down sandbox's connection-tracking entries
# Package versions are not pinned: the release is, and security updates should land.
FROM runtime AS agent
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
       tini catatonit nftables iproute2 kmod conntrack ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=native /out/sandpit-init dist/native/sandpit-init
USER 0:0
EXPOSE 10260 10261
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "-s", "--", "node", "--enable-source-maps", "/app/dist/node-agent/main.js"]

# ---------------------------------------------------------------------------
# controller: non-root, no shell needed, read-only root file system friendly.
# It issues certificates in process (lib/pki), so it needs no openssl CLI.
# Last, so a plain `docker build .` makes the controller.
FROM runtime AS controller
USER 65532:65532
EXPOSE 8081 8443
ENTRYPOINT ["node", "--enable-source-maps", "/app/dist/controllers/main.js"]
