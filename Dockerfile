# auth-gateway image: multi-stage, production dependencies only, runs as the non-root
# `node` user. Not built here (no container engine on the dev machines); see the README.

# --- build: the full toolchain compiles TypeScript (server and browser client) to dist/ ---
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY client ./client
RUN npm run build

# --- runtime: production dependencies and the compiled output, nothing else ---
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8080
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY client/demo ./client/demo
USER node
EXPOSE 8080
# /readyz answers 503 while the store (Redis) is unreachable.
HEALTHCHECK --interval=10s --timeout=2s --start-period=5s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.GATEWAY_PORT || 8080) + '/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# SIGTERM drains (answers what was read, closes sockets with 1001) and exits 0.
STOPSIGNAL SIGTERM
CMD ["node", "dist/cli.js", "serve"]
