"""Image pipelines and the job runner that claims, runs and completes jobs: no Qt here."""
