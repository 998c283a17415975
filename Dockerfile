# Roundhouse: serves the built-in tiny model on 0.0.0.0:8080, and fine-tunes with the
# llama.cpp tools built in the `tools` stage. For a CUDA image, see README.md ("Docker").
FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm install --omit=dev --no-audit --no-fund
# The dashboard's files (dist/dashboard), built as `npm start` builds them.
COPY tsconfig.json ./
COPY scripts/build-dashboard.ts ./scripts/
COPY src/dashboard ./src/dashboard
RUN npx tsx scripts/build-dashboard.ts

# llama-finetune, llama-quantize and llama-server, built by the same script a checkout runs
# (scripts/docker/build-tools.sh: `npm run tools`, portable flags, our patches).
FROM node:20-bookworm-slim AS tools
RUN apt-get update && apt-get install -y --no-install-recommends cmake ninja-build g++ git ca-certificates \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json tsconfig.json ./
COPY src ./src
COPY scripts ./scripts
RUN ROUNDHOUSE_CACHE_DIR=/tmp/roundhouse-cache scripts/docker/build-tools.sh /opt/llama.cpp/bin

FROM node:20-bookworm-slim
# The tools use OpenMP.
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production HOST=0.0.0.0 PORT=8080 DATA_DIR=/data MODELS_CONFIG=/app/models.yaml \
  ROUNDHOUSE_LLAMA_BIN=/opt/llama.cpp/bin
COPY --from=deps /app/node_modules ./node_modules
COPY --from=tools /opt/llama.cpp/bin /opt/llama.cpp/bin
COPY package.json tsconfig.json models.yaml ./
COPY src ./src
COPY routes ./routes
COPY --from=deps /app/dist ./dist
COPY models ./models
RUN mkdir -p /data && chown node:node /data
USER node
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s CMD node -e "fetch('http://127.0.0.1:8080/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "--import", "tsx", "src/main.ts"]
