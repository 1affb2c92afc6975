# The factory's production image. Two stages:
#   build    npm ci (the lockfile's pinned `node` package comes with it) and `npm run build` -> dist/
#   runtime  Debian 12 slim, the Debian tools the imager drives (scripts/host-packages.sh `runtime`), the Node
#            binary of the pinned `node` package, dist/ and the production dependencies; runs as a non-root user.
# Why Debian + the `node` package rather than node:24-bookworm-slim at run time: the Node that runs is exactly
# the one package-lock.json pins and the tests run on (not whatever a floating base tag holds), and the runtime
# base is plain Debian 12 — the distribution scripts/host-packages.sh is written for — so it can also be laid
# from Debian's own mirror (debootstrap) where Docker Hub is out of reach. See docs/deploying.md.
# Read-only root friendly: everything written goes to /var/lib/boot-assets (a volume) or /tmp (mount a tmpfs).

ARG DEBIAN_IMAGE=debian:bookworm-slim

FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY src ./src
# `npm ci` installs the pinned `node` package and runs `prepare` (= `npm run build`: tsc -> dist/) with it;
# the binary is kept aside before the dev dependencies (the `node` package among them) are pruned.
RUN npm ci --no-audit --no-fund \
  && test -f dist/cli/main.js \
  && cp node_modules/node/bin/node /src/node \
  && npm prune --omit=dev --no-audit --no-fund

FROM ${DEBIAN_IMAGE} AS runtime
# The list is scripts/host-packages.sh's `runtime` list (test/deploy/dockerfile.test.ts keeps them equal).
RUN apt-get update \
  && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    apt dpkg ca-certificates squashfs-tools kmod zstd xz-utils cpio tar binutils dosfstools mtools xfsprogs \
    util-linux xorriso grub-pc-bin grub-efi-amd64-bin grub-common qemu-utils gdisk faketime \
  && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
  && groupadd --system --gid 10001 boot-assets \
  && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/boot-assets --no-create-home \
    --shell /usr/sbin/nologin boot-assets \
  && mkdir -p /var/lib/boot-assets \
  && chown 10001:10001 /var/lib/boot-assets \
  && chmod 0750 /var/lib/boot-assets
COPY --from=build /src/node /usr/local/bin/node
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/bin ./bin
COPY --from=build /src/dist ./dist
# Settings through the factory's own environment source (IF_<KEY>), so arguments given to `docker run` add
# flags instead of replacing the data directory. HOME and XDG_CACHE_HOME point into the volume, TMPDIR at /tmp.
ENV NODE_ENV=production \
  HOME=/var/lib/boot-assets \
  XDG_CACHE_HOME=/var/lib/boot-assets/cache \
  TMPDIR=/tmp \
  IF_DATADIR=/var/lib/boot-assets
USER 10001:10001
VOLUME ["/var/lib/boot-assets"]
# 8080: the factory (-http-port :8080); 2122: Prometheus metrics (-metrics-listen-addr :2122).
EXPOSE 8080 2122
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/node", "-e", "fetch('http://127.0.0.1:8080/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/node", "/app/bin/boot-assets.js", "factory"]
