"""The retrieval core shared by the service and the evaluation command.

Pure computation over in-memory indexes (BM25, dense vectors, IPC codes) plus the offline
MiniLM embedder. Nothing here touches the database or Kafka: the service feeds it from its
read model, the evaluation command feeds it from BEIR files, so both measure the same code.
"""
