"""Post the plan-diff comment, or edit the one already there: `python -m tools.diff.post --repo OWNER/NAME --pr N
--body comment.md [--head-sha SHA]`.

Finds the bot's own comment by the hidden marker at the start of its body (tools.diff.comment.MARKER) and edits it
in place; posts a new one only when there is none. Every call goes through `gh api` (GH_TOKEN in the environment).
With --head-sha, the pull request's head must be that commit: the number comes from an artifact that a pull request
from a fork wrote, and a comment never goes to another pull request than the one the run was for. Standard library
only: the workflow that posts runs it from the default branch, without the project's virtualenv.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

MARKER = "<!-- ambient-mesh:plan-diff -->"  # tools.diff.comment.MARKER (a test keeps the two equal)
BOT = "github-actions[bot]"


class PostError(RuntimeError):
    pass


class NotThisHead(PostError):
    """The pull request has moved on (a newer push: its own run posts), or the number is not this run's."""


def gh(*args: str) -> str:
    done = subprocess.run(["gh", "api", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PostError(f"gh api {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def find_comment(repo: str, pr: int, author: str = BOT) -> int | None:
    """The id of `author`'s comment that starts with the marker, if any (the first, should there be several)."""
    pages = gh("--paginate", "--slurp", f"repos/{repo}/issues/{pr}/comments")
    for page in json.loads(pages or "[]"):
        for comment in page:
            if (comment.get("user") or {}).get("login") == author and str(comment.get("body", "")).startswith(MARKER):
                return int(comment["id"])
    return None


def post(repo: str, pr: int, body_file: Path, head_sha: str | None = None, author: str = BOT) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repo):
        raise PostError(f"not a repository: {repo!r}")
    body = body_file.read_text(encoding="utf-8")
    if not body.startswith(MARKER):
        raise PostError(f"{body_file} does not start with the plan-diff marker: not a comment of ours")
    if head_sha is not None:
        actual = json.loads(gh(f"repos/{repo}/pulls/{pr}")).get("head", {}).get("sha")
        if actual != head_sha:
            raise NotThisHead(f"pull request #{pr}'s head is {actual}, not {head_sha}: not posting (a newer push "
                              "posts its own, or this is not the run's pull request)")
    existing = find_comment(repo, pr, author)
    if existing is not None:
        gh("--method", "PATCH", f"repos/{repo}/issues/comments/{existing}", "-F", f"body=@{body_file}")
        return f"edited comment {existing} on #{pr}"
    gh("--method", "POST", f"repos/{repo}/issues/{pr}/comments", "-F", f"body=@{body_file}")
    return f"posted a new comment on #{pr}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.diff.post", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", required=True)
    parser.add_argument("--pr", required=True)
    parser.add_argument("--body", required=True, type=Path)
    parser.add_argument("--head-sha")
    parser.add_argument("--author", default=BOT)
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[1-9][0-9]{0,9}", args.pr.strip()):
        print(f"post: not a pull request number: {args.pr!r}", file=sys.stderr)
        return 2
    try:
        print(f"post: {post(args.repo, int(args.pr), args.body, args.head_sha, args.author)}")
    except NotThisHead as error:
        print(f"post: {error}")
        return 0
    except PostError as error:
        print(f"post: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
