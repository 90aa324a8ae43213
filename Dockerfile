# The streamer image used by docker-compose.yml.
FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:20-slim
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
