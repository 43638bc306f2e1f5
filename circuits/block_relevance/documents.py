"""Training documents and unseen documents: a seeded split of a ranking family's document pool.

BlockRank training draws its prompts from the training documents only; block relevance then
measures precision@1 on held-out prompts built from the training documents (``seen``: new
prompts, documents met in training) and on prompts built only from the unseen documents
(``unseen``), so that a ranking learned in training can be told from documents remembered.

A family's pool is what its documents are made of: the 64 sentences of ``nl_ranking_lexical``
and ``nl_ranking_semantic`` (each named by its key word), and the content words of the
organism's ``ranking`` (its documents are bags of them, the query one of them). A family with
no known pool (a task file's) has no split: training uses all of it and no unseen precision@1
is reported.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from interp.errors import IclscopeError
from interp.organism.language import Episode

UNSEEN_SHARE = 0.25
"""The share of the pool kept out of training by default."""


def _natural_pool() -> dict[str, dict]:
    from interp.tasks import natural

    return {e["keyword"]: e for e in natural._RANKING}


def _organism_pool() -> tuple[str, ...]:
    from interp.organism import language

    return tuple(language.CONTENT_WORDS)


def document_pool(family: str) -> tuple[str, ...] | None:
    """The keys of ``family``'s document pool in their stored order, or ``None`` (no pool)."""
    if family in ("nl_ranking_lexical", "nl_ranking_semantic"):
        return tuple(_natural_pool())
    if family == "ranking":
        return _organism_pool()
    return None


def split_keys(
    keys: tuple[str, ...] | list[str], seed: int = 0, unseen_share: float = UNSEEN_SHARE
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``keys`` split into (training, unseen), disjoint and together all of ``keys``: a
    shuffle seeded by ``seed`` alone, its first ``round(unseen_share * len)`` unseen (at least
    one), both sides kept in the pool's order."""
    keys = list(dict.fromkeys(keys))
    if not 0 < unseen_share < 1:
        raise IclscopeError(
            f"unseen share {unseen_share} is not between 0 and 1",
            fix="keep a share of the documents, e.g. 0.25",
        )
    if len(keys) < 2:
        raise IclscopeError(f"a pool of {len(keys)} documents cannot be split")
    order = keys[:]
    random.Random(f"documents:{seed}").shuffle(order)
    n_unseen = min(max(1, round(unseen_share * len(keys))), len(keys) - 1)
    unseen = set(order[:n_unseen])
    return (
        tuple(k for k in keys if k not in unseen),
        tuple(k for k in keys if k in unseen),
    )


def side_minimum(family: str, docs: int) -> int:
    """The fewest pool items a side of the split needs to build prompts of ``docs`` documents:
    the documents themselves, or for the organism a query word and four others."""
    return 5 if family == "ranking" else docs


def check_split(
    family: str,
    unseen_share: float,
    seed: int,
    docs: int,
    share_option: str = "--unseen-share",
    seed_option: str = "--unseen-seed",
) -> DocumentSplit | None:
    """The split of ``family``'s pool, or one :class:`IclscopeError` that names the bad value
    and the fix: a share outside (0, 1), a negative seed, or a split whose training or unseen
    side is too small for prompts of ``docs`` documents. It reads no model, so a command
    calls it before anything heavy loads. ``None`` for a family with no pool."""
    if not (math.isfinite(unseen_share) and 0 < unseen_share < 1):
        raise IclscopeError(
            f"{share_option} {unseen_share} is not a share between 0 and 1",
            fix=f"keep a share of the documents out of training, e.g. {share_option} 0.25",
        )
    if seed < 0:
        fix = f"use a seed of 0 or more, e.g. {seed_option} 0"
        raise IclscopeError(f"{seed_option} {seed} is negative", fix=fix)
    split = DocumentSplit.of(family, seed, unseen_share)
    if split is None:
        return None
    need, size = side_minimum(family, docs), len(split.train) + len(split.unseen)
    if min(len(split.train), len(split.unseen)) >= need:
        return split
    unit = "words" if family == "ranking" else "documents"
    problem = (
        f"{share_option} {unseen_share} leaves {len(split.unseen)} unseen and "
        f"{len(split.train)} training {unit} of {size}; prompts of {docs} documents need at "
        f"least {need} on each side"
    )
    low, high = math.ceil(100 * need / size) / 100, math.floor(100 * (size - need) / size) / 100
    if low > high:
        raise IclscopeError(problem, fix=f"use at most {size // 2} documents per prompt (--docs)")
    fewer = "" if family == "ranking" else ", or fewer documents per prompt (--docs)"
    raise IclscopeError(problem, fix=f"use {share_option} between {low:.2f} and {high:.2f}{fewer}")


@dataclass(frozen=True)
class DocumentSplit:
    """``family``'s pool split into ``train`` and ``unseen`` keys (see :func:`split_keys`)."""

    family: str
    seed: int
    unseen_share: float
    train: tuple[str, ...]
    unseen: tuple[str, ...]

    @classmethod
    def of(
        cls, family: str, seed: int = 0, unseen_share: float = UNSEEN_SHARE
    ) -> DocumentSplit | None:
        """The split of ``family``'s pool, or ``None`` when it has no known pool."""
        pool = document_pool(family)
        if pool is None:
            return None
        train, unseen = split_keys(pool, seed, unseen_share)
        return cls(family, seed, unseen_share, train, unseen)

    def record(self) -> dict:
        """What a training record keeps: the seed, the share and the unseen keys."""
        return {
            "seed": self.seed,
            "unseen_share": self.unseen_share,
            "train": len(self.train),
            "unseen_keys": list(self.unseen),
        }

    @classmethod
    def from_record(cls, family: str, record: dict) -> DocumentSplit | None:
        """The split a training record kept (its unseen keys as written), for ``family``."""
        pool = document_pool(family)
        if pool is None:
            return None
        unseen = set(record["unseen_keys"])
        return cls(
            family,
            int(record["seed"]),
            float(record["unseen_share"]),
            tuple(k for k in pool if k not in unseen),
            tuple(k for k in pool if k in unseen),
        )

    def keys(self, side: str) -> tuple[str, ...]:
        if side not in ("train", "unseen"):
            raise ValueError(f"side is 'train' or 'unseen', not {side!r}")
        return self.train if side == "train" else self.unseen

    def sample(self, side: str, rng: random.Random, n_docs: int) -> Episode:
        """One prompt whose documents (for the organism: whose words) all come from
        ``side``, drawn as the family draws its prompts from the whole pool."""
        return sample_from(self.family, self.keys(side), rng, n_docs)

    def episodes(self, side: str, n: int, n_docs: int, seed: int, stream: str) -> list[Episode]:
        """``n`` prompts of ``side``, reproducibly, from the random stream ``stream``."""
        rng = random.Random(f"{self.family}:{n_docs}:{seed}:{stream}")
        return [self.sample(side, rng, n_docs) for _ in range(n)]


def sample_from(family: str, keys: tuple[str, ...], rng: random.Random, n_docs: int) -> Episode:
    """A prompt of ``family`` (a family with a pool) drawn from the pool items ``keys`` only."""
    from interp.tasks.natural import DOC_IDS

    if family in ("nl_ranking_lexical", "nl_ranking_semantic"):
        if not 1 <= n_docs <= min(len(DOC_IDS), len(keys)):
            raise IclscopeError(
                f"{n_docs} documents per prompt do not fit {len(keys)} documents of the split",
                fix="use fewer documents per prompt, or a smaller unseen share",
            )
        pool = _natural_pool()
        entries = [pool[k] for k in rng.sample(keys, n_docs)]
        ids = rng.sample(DOC_IDS, n_docs)
        gold = rng.randrange(n_docs)
        query = entries[gold]["question" if family.endswith("semantic") else "keyword"]
        docs = [(doc_id, e["doc"]) for doc_id, e in zip(ids, entries)]
        return Episode([], query, ids[gold], labels=tuple(ids), docs=docs, meta={"gold": gold})
    if family == "ranking":
        from interp.organism.language import NUMBER_WORDS

        if len(keys) < 5:
            raise IclscopeError(f"{len(keys)} words are too few for organism documents")
        query = rng.choice(keys)
        ids = rng.sample(NUMBER_WORDS, n_docs)
        gold = rng.randrange(n_docs)
        others = [w for w in keys if w != query]
        docs = []
        for d, doc_id in enumerate(ids):
            words = rng.sample(others, rng.randint(2, 4))
            if d == gold:
                words[rng.randrange(len(words))] = query
            docs.append((doc_id, " ".join(words)))
        return Episode([], query, ids[gold], labels=tuple(ids), docs=docs, meta={"gold": gold})
    raise IclscopeError(f"{family!r} has no document pool to split")


def episode_keys(family: str, episode: Episode) -> set[str]:
    """The pool items an episode of ``family`` is made of (its documents' keys, or for the
    organism its words)."""
    if family in ("nl_ranking_lexical", "nl_ranking_semantic"):
        by_doc = {e["doc"]: k for k, e in _natural_pool().items()}
        return {by_doc[content] for _, content in episode.docs}
    return {w for _, content in episode.docs for w in content.split()}
