"""LangChain integration: `AkiDBVectorStore`, `AkiDBEmbeddings` and `AkiDBRerank`.

Needs the `langchain` extra: `pip install 'akidb-client[langchain]'`.
"""

from akidb_client.langchain.rerank import AkiDBRerank
from akidb_client.langchain.store import AkiDBEmbeddings, AkiDBVectorStore

__all__ = ["AkiDBEmbeddings", "AkiDBRerank", "AkiDBVectorStore"]
