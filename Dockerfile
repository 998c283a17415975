# Roundhouse: serves the built-in tiny model on 0.0.0.0:8080.
# For a CUDA image, see README.md ("Docker").
FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm install --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production HOST=0.0.0.0 PORT=8080 DATA_DIR=/data MODELS_CONFIG=/app/models.yaml
COPY --from=deps /app/node_modules ./node_modules
COPY package.json tsconfig.json models.yaml ./
COPY src ./src
COPY routes ./routes
COPY models ./models
RUN mkdir -p /data && chown node:node /data
USER node
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s CMD node -e "fetch('http://127.0.0.1:8080/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "--import", "tsx", "src/main.ts"]
