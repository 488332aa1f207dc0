# Shared by the bench scripts: `. benches/lib.sh` (from the repository root).

# The `wait` connector's `components:` (indented under `wait:`): one component, `main`, with a
# setting of each kind (cpu, memory, replicas, enum). $1: memory's starting value in GiB.
wait_components() {
  cat <<EOF
  components:
    main:
      settings:
        cpu: { type: cpu, min: 0.25, max: 4, step: 0.25, value: 1 }
        memory: { type: memory, min: 0.25, max: 8, step: 0.25, value: $1 }
        replicas: { type: replicas, min: 1, max: 8, step: 1, value: 2 }
        mode: { type: enum, values: [fast, balanced, thorough], value: balanced }
EOF
}
