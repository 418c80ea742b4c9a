"""One chat completion through the proxy with the official OpenAI SDK.

Usage: python3 chat.py PROMPT
The SDK reads OPENAI_BASE_URL and OPENAI_API_KEY from the environment. Prints one JSON object
on stdout: {"ok": true, "content": ...} or {"ok": false, "error_class": ..., "status": ...}.
Run by usagepanda-cli/tests/sdk_e2e.rs.
"""

import json
import sys

import openai


def main() -> None:
    prompt = sys.argv[1]
    client = openai.OpenAI(max_retries=0, timeout=30.0)
    try:
        completion = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": prompt}],
            max_tokens=50,
        )
        result = {
            "ok": True,
            "id": completion.id,
            "model": completion.model,
            "content": completion.choices[0].message.content,
            "finish_reason": completion.choices[0].finish_reason,
        }
    except openai.APIError as e:
        result = {
            "ok": False,
            "error_class": type(e).__name__,
            "is_unprocessable_entity": isinstance(e, openai.UnprocessableEntityError),
            "status": getattr(e, "status_code", None),
            "message": e.message,
            "body": e.body,
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
