# auth-gateway image: multi-stage, production dependencies only, runs as the non-root
# `node` user under tini. No container engine runs on the dev machines: the tests build the
# build stage's TypeScript from exactly what it copies out of the context (.dockerignore
# applied). See the README's "Deploy files" section, which also says how to pin the base
# images by digest.
#
# Node: the image runs the current LTS line (24). package.json `engines` accepts >=20.12;
# the test suite runs on the Node of the CI machine (20 today, `node --version` in .ci/run).
# Base images are pinned by version; pin them by digest too when you build
# (`docker buildx imagetools inspect node:24.9.0-bookworm-slim` gives it):
#   FROM node:24.9.0-bookworm-slim@sha256:<digest>

# --- build: the full toolchain compiles TypeScript (server, browser client, middleware) to dist/ ---
FROM node:24.9.0-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY client ./client
COPY middleware ./middleware
COPY scripts/touch-built.mjs ./scripts/
RUN npm run build

# --- runtime: production dependencies, the compiled server and client, nothing else ---
# The demo page (client/demo) and the dev login stay out: the production image serves no demo.
FROM node:24.9.0-bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8080
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
USER node
EXPOSE 8080
# Liveness: /healthz answers 200 while the process serves, whatever the store does (a Redis
# outage must not get every replica restarted). Readiness (/readyz) is for the load balancer.
HEALTHCHECK --interval=10s --timeout=2s --start-period=5s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.GATEWAY_PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# tini as PID 1: signals reach node, zombies are reaped.
ENTRYPOINT ["/usr/bin/tini", "--"]
# SIGTERM drains: /readyz 503 for GATEWAY_DRAIN_DELAY, then WebSockets closed with 1012
# over GATEWAY_DRAIN_WINDOW, then exit 0 (within compose's stop_grace_period).
STOPSIGNAL SIGTERM
CMD ["node", "dist/cli.js", "serve"]
