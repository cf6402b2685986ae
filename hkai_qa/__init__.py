"""hkai-qa: extractive, cited question answering over a folder of documents."""

from hkai_qa.config import Settings
from hkai_qa.types import Answer, Chunk, Citation, Document, Hit, Section, Sentence

__all__ = ["Answer", "Chunk", "Citation", "Document", "Hit", "Section", "Sentence", "Settings"]
__version__ = "0.1.0"
