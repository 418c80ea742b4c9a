"""One streaming chat completion (stream=True) through the proxy with the official OpenAI SDK.

Usage: python3 stream.py PROMPT
The SDK reads OPENAI_BASE_URL and OPENAI_API_KEY from the environment. Prints one JSON object
on stdout: the concatenated content deltas received (before any error), the number of chunks,
the finish reason, and the error the SDK raised while iterating, if any.
Run by usagepanda-cli/tests/sdk_e2e.rs.
"""

import json
import sys

import openai


def main() -> None:
    prompt = sys.argv[1]
    client = openai.OpenAI(max_retries=0, timeout=30.0)
    deltas = []
    chunks = 0
    finish_reason = None
    error = None
    try:
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": prompt}],
            stream=True,
        )
        for chunk in stream:
            chunks += 1
            for choice in chunk.choices:
                if choice.delta is not None and choice.delta.content:
                    deltas.append(choice.delta.content)
                if choice.finish_reason:
                    finish_reason = choice.finish_reason
    except openai.APIError as e:
        error = {
            "error_class": type(e).__name__,
            "is_api_error": isinstance(e, openai.APIError),
            "status": getattr(e, "status_code", None),
            "message": e.message,
            "body": e.body,
        }
    print(
        json.dumps(
            {
                "text": "".join(deltas),
                "deltas": deltas,
                "chunks": chunks,
                "finish_reason": finish_reason,
                "error": error,
            }
        )
    )


if __name__ == "__main__":
    main()
