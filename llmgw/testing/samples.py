"""The providers' wire shapes the fakes reproduce field for field (values differ), as recorded from their API
references (OpenAI, Anthropic, Gemini). They are strings so that nothing at module level is mutable; tests parse
them to compare shapes. Each fake's module re-exports its provider's samples.
"""

from __future__ import annotations

from typing import Final

# ----------------------------------------------------------------------------------------------------------
# Recorded shapes (OpenAI API reference: "The chat completion object", "The chat completion chunk object",
# "The embedding object", "List models", "Error codes").
# ----------------------------------------------------------------------------------------------------------

CHAT_COMPLETION_SAMPLE: Final = """{
  "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
  "object": "chat.completion",
  "created": 1741570283,
  "model": "gpt-4o-2024-08-06",
  "choices": [
    {
      "index": 0,
      "message": {
        "role": "assistant",
        "content": "The image shows a wooden boardwalk path running through a lush green field or meadow.",
        "refusal": null,
        "annotations": []
      },
      "logprobs": null,
      "finish_reason": "stop"
    }
  ],
  "usage": {
    "prompt_tokens": 1117,
    "completion_tokens": 46,
    "total_tokens": 1163,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {
      "reasoning_tokens": 0,
      "audio_tokens": 0,
      "accepted_prediction_tokens": 0,
      "rejected_prediction_tokens": 0
    }
  },
  "service_tier": "default",
  "system_fingerprint": "fp_fc9f1d7035"
}"""

CHAT_COMPLETION_CHUNK_SAMPLE: Final = """{
  "id": "chatcmpl-123",
  "object": "chat.completion.chunk",
  "created": 1694268190,
  "model": "gpt-4o-mini",
  "service_tier": "default",
  "system_fingerprint": "fp_44709d6fcb",
  "choices": [
    {"index": 0, "delta": {"role": "assistant", "content": "", "refusal": null}, "logprobs": null,
     "finish_reason": null}
  ]
}"""

# The extra chunk sent before ``data: [DONE]`` when ``stream_options.include_usage`` is true.
USAGE_CHUNK_SAMPLE: Final = """{
  "id": "chatcmpl-123",
  "object": "chat.completion.chunk",
  "created": 1694268190,
  "model": "gpt-4o-mini",
  "service_tier": "default",
  "system_fingerprint": "fp_44709d6fcb",
  "choices": [],
  "usage": {
    "prompt_tokens": 9,
    "completion_tokens": 12,
    "total_tokens": 21,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {
      "reasoning_tokens": 0,
      "audio_tokens": 0,
      "accepted_prediction_tokens": 0,
      "rejected_prediction_tokens": 0
    }
  }
}"""

EMBEDDINGS_SAMPLE: Final = """{
  "object": "list",
  "data": [{"object": "embedding", "index": 0, "embedding": [0.0023064255, -0.009327292, -0.0028842222]}],
  "model": "text-embedding-3-small",
  "usage": {"prompt_tokens": 8, "total_tokens": 8}
}"""

MODELS_SAMPLE: Final = """{
  "object": "list",
  "data": [
    {"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"}
  ]
}"""

ERROR_SAMPLE: Final = """{
  "error": {
    "message": "Incorrect API key provided: sk-abc***xyz. You can find your API key at https://platform.openai.com/account/api-keys.",
    "type": "invalid_request_error",
    "param": null,
    "code": "invalid_api_key"
  }
}"""


# ----------------------------------------------------------------------------------------------------------
# Recorded shapes (Anthropic API reference: "Create a Message", "Streaming Messages" -- the stream with a
# tool_use block --, "Errors", "List Models", "Count tokens in a Message").
# ----------------------------------------------------------------------------------------------------------

ANTHROPIC_MESSAGE_SAMPLE: Final = """{
  "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
  "type": "message",
  "role": "assistant",
  "model": "claude-sonnet-4-5-20250929",
  "content": [
    {"type": "text", "text": "Hello! How can I help you today?"}
  ],
  "stop_reason": "end_turn",
  "stop_sequence": null,
  "usage": {
    "input_tokens": 12,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
    "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
    "output_tokens": 10,
    "service_tier": "standard"
  }
}"""

# A whole stream: a text block, then a tool_use block whose input arrives as input_json_delta fragments
# (the first one empty), then the message_delta with the stop reason and the cumulative usage.
ANTHROPIC_STREAM_SAMPLE: Final = (
    "event: message_start\n"
    'data: {"type":"message_start","message":{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","type":"message",'
    '"role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,'
    '"usage":{"input_tokens":472,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,'
    '"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},"output_tokens":2,'
    '"service_tier":"standard"}}}\n\n'
    "event: content_block_start\n"
    'data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n'
    "event: ping\n"
    'data: {"type":"ping"}\n\n'
    "event: content_block_delta\n"
    'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Let me check"}}\n\n'
    "event: content_block_delta\n"
    'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" the weather."}}\n\n'
    "event: content_block_stop\n"
    'data: {"type":"content_block_stop","index":0}\n\n'
    "event: content_block_start\n"
    'data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use",'
    '"id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}\n\n'
    "event: content_block_delta\n"
    'data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}\n\n'
    "event: content_block_delta\n"
    'data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta",'
    '"partial_json":"{\\"location\\": \\"Pa"}}\n\n'
    "event: content_block_delta\n"
    'data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"ris\\"}"}}\n\n'
    "event: content_block_stop\n"
    'data: {"type":"content_block_stop","index":1}\n\n'
    "event: message_delta\n"
    'data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},'
    '"usage":{"input_tokens":472,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":89}}\n\n'
    "event: message_stop\n"
    'data: {"type":"message_stop"}\n\n'
)

# An error sent inside a stream that had already answered 200 (HTTP 529 outside a stream).
ANTHROPIC_STREAM_ERROR_SAMPLE: Final = """event: error
data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}

"""

ANTHROPIC_ERROR_SAMPLE: Final = """{
  "type": "error",
  "error": {
    "type": "not_found_error",
    "message": "The requested resource could not be found."
  },
  "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"
}"""

ANTHROPIC_MODELS_SAMPLE: Final = """{
  "data": [
    {
      "type": "model",
      "id": "claude-sonnet-4-5-20250929",
      "display_name": "Claude Sonnet 4.5",
      "created_at": "2025-09-29T00:00:00Z"
    }
  ],
  "has_more": false,
  "first_id": "claude-sonnet-4-5-20250929",
  "last_id": "claude-sonnet-4-5-20250929"
}"""

ANTHROPIC_COUNT_TOKENS_SAMPLE: Final = """{"input_tokens": 2095}"""


# ----------------------------------------------------------------------------------------------------------
# Recorded shapes (Google's Gemini API reference: ``models.generateContent``, ``GenerateContentResponse``,
# function calling, ``models.batchEmbedContents``), a recorded ``alt=sse`` stream, and the error the API gives
# for a bad key.
# ----------------------------------------------------------------------------------------------------------

GEMINI_RESPONSE_SAMPLE: Final = """{
  "candidates": [
    {
      "content": {
        "parts": [
          {"text": "AI works by using algorithms and large amounts of data to learn patterns and make predictions."}
        ],
        "role": "model"
      },
      "finishReason": "STOP",
      "index": 0
    }
  ],
  "usageMetadata": {
    "promptTokenCount": 8,
    "candidatesTokenCount": 18,
    "totalTokenCount": 415,
    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 8}],
    "thoughtsTokenCount": 389
  },
  "modelVersion": "gemini-2.5-flash",
  "responseId": "nq1yaNLJE9KPxN8PoqG0sAQ"
}"""

GEMINI_FUNCTION_CALL_SAMPLE: Final = """{
  "candidates": [
    {
      "content": {
        "parts": [
          {"functionCall": {"name": "find_theaters", "args": {"location": "Mountain View, CA", "movie": "Barbie"}}}
        ],
        "role": "model"
      },
      "finishReason": "STOP",
      "index": 0
    }
  ],
  "usageMetadata": {"promptTokenCount": 74, "candidatesTokenCount": 20, "totalTokenCount": 94},
  "modelVersion": "gemini-2.0-flash",
  "responseId": "Yd1yaJ2lNtSPxN8P4LGH6Qk"
}"""

# What ``streamGenerateContent?alt=sse`` sends: one ``data:`` event per GenerateContentResponse, CRLF-framed.
GEMINI_STREAM_SAMPLE: Final = (
    'data: {"candidates": [{"content": {"parts": [{"text": "Hello!"}],"role": "model"},"index": 0}],'
    '"usageMetadata": {"promptTokenCount": 2,"totalTokenCount": 2,'
    '"promptTokensDetails": [{"modality": "TEXT","tokenCount": 2}]},'
    '"modelVersion": "gemini-2.0-flash","responseId": "tTCwacuEBMvnitYP06qsgQY"}\r\n\r\n'
    'data: {"candidates": [{"content": {"parts": [{"text": " How can I help you today?"}],"role": "model"},'
    '"finishReason": "STOP","index": 0}],'
    '"usageMetadata": {"promptTokenCount": 2,"candidatesTokenCount": 9,"totalTokenCount": 11,'
    '"promptTokensDetails": [{"modality": "TEXT","tokenCount": 2}],'
    '"candidatesTokensDetails": [{"modality": "TEXT","tokenCount": 9}]},'
    '"modelVersion": "gemini-2.0-flash","responseId": "tTCwacuEBMvnitYP06qsgQY"}\r\n\r\n'
)

GEMINI_EMBEDDINGS_SAMPLE: Final = """{
  "embeddings": [
    {"values": [-0.0100242095, 0.0042573214, 0.012413281]},
    {"values": [0.0031239912, -0.018226605, 0.005061452]}
  ]
}"""

GEMINI_ERROR_SAMPLE: Final = """{
  "error": {
    "code": 400,
    "message": "API key not valid. Please pass a valid API key.",
    "status": "INVALID_ARGUMENT",
    "details": [
      {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"}
      },
      {
        "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
        "locale": "en-US",
        "message": "API key not valid. Please pass a valid API key."
      }
    ]
  }
}"""
