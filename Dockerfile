# The streamer image used by docker-compose.yml.
# Node.js 22: Node 20 reached its end of life on 2026-04-30, and on the same code the streamer
# used 13 % less CPU per row on 22 than on 20 in a backlog drain (five alternated pairs; Node 24:
# no gain, and 300 MB of RSS with V8's default young generation) — bench/README.md
# "2026-11-27 (night)". Node 22 is maintained until 2027-04-30: measure 24 again before then.
FROM node:22-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:22-slim
WORKDIR /app
ENV NODE_ENV=production
# /healthz, /readyz, /metrics must be reachable from outside the container (probes, Prometheus).
# Ports: run 9464, producer 9465, consumer 9466 (HTTP_PORT overrides).
ENV HTTP_HOST=0.0.0.0
EXPOSE 9464 9465 9466
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY sql ./sql
USER node
ENTRYPOINT ["node", "bin/streamer.js"]
CMD ["run"]
