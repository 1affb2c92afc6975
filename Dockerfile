# Production image: Node 24 LTS (the runtime this project pins), compiled CLI, production dependencies only.
FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY src ./src
RUN npm ci --no-audit --no-fund && npm prune --omit=dev

FROM node:24-bookworm-slim
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/bin ./bin
COPY --from=build /src/dist ./dist
USER node
VOLUME /data
EXPOSE 5000
ENTRYPOINT ["node", "/app/bin/boot-assets.js"]
CMD ["registry", "--listen", "0.0.0.0:5000", "--root", "/data/registry"]
