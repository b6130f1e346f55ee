"""Fixtures shared by the data tests."""
import pytest
from loguru import logger


@pytest.fixture
def warnings_log():
    messages = []
    handler = logger.add(lambda m: messages.append(str(m)), level="WARNING", format="{message}")
    yield messages
    logger.remove(handler)
