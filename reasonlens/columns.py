"""Column names of the two tables everything flows through, defined once.

The rollout table has one row per sampled response; the dynamics table one row per step.
"""

# --- rollout table: identity -------------------------------------------------------------
STEP = "step"                    # int: training step / checkpoint number (base model = 0)
CHECKPOINT = "checkpoint"        # str: checkpoint folder name (or "base", or the run's step name)
PROMPT_ID = "prompt_id"          # str: stable id of the problem within its task
SAMPLE_ID = "sample_id"          # int: 0..K-1, which of the K samples for this prompt
PROMPT = "prompt"                # str: the question as given to the model (before the chat template)
PROMPT_MESSAGES = "prompt_messages"  # list[dict] (logs only): a conversational prompt as logged, for re-scoring
PROMPT_TOKEN_IDS = "prompt_token_ids"  # list[int]: chat-templated prompt tokens
RESPONSE = "response"            # str: decoded response text
TOKEN_IDS = "token_ids"          # list[int]: response tokens (no padding, EOS excluded)

# --- rollout table: outcome --------------------------------------------------------------
ANSWER = "answer"                # str: the gold (reference) answer
PRED = "pred"                    # str | None: the model's final answer, extracted from \boxed{}
REWARD = "reward"                # float: 1.0/0.0, or the task's graded score
CORRECT = "correct"              # bool: verified equal to the gold answer
N_TOKENS = "n_tokens"            # int: len(token_ids)
TRUNCATED = "truncated"          # bool: hit --max-new-tokens before EOS

# --- rollout table: token arrays (aligned with token_ids) --------------------------------
TOKEN_OFFSETS = "token_offsets"  # list[[start, end]]: each token's character span in RESPONSE
LOGPROBS = "logprobs"            # list[float]: log p(sampled token), nats
ENTROPIES = "entropies"          # list[float]: full-vocabulary entropy, nats
PLANNING_MASK = "planning_mask"  # list[bool]: True = planning token (overlaps a strategic gram)
ADVANTAGES = "advantages"        # list[float]: per-token credit used in the loss (training runs only)

# --- rollout table: tags (hierarchy.tag, one tagger pass per response) -------------------
PLANNING_SPANS = "planning_spans"        # list[[start, end]]: union of the gram occurrences in RESPONSE
GRAMS = "grams"                          # list[str]: counted occurrences (left to right, longest first)
GRAM_NEXT = "gram_next"                  # list[str]: the next non-SG word 3-gram of each ("" = none)
N_WORDS = "n_words"                      # int: words in RESPONSE
N_PLANNING_WORDS = "n_planning_words"    # int: words overlapping a gram occurrence
N_REFLECTIONS = "n_reflections"          # int: backtracking / verification markers

ROLLOUT_COLUMNS = [
    STEP, CHECKPOINT, PROMPT_ID, SAMPLE_ID, PROMPT, PROMPT_TOKEN_IDS, RESPONSE, TOKEN_IDS,
    ANSWER, PRED, REWARD, CORRECT, N_TOKENS, TRUNCATED, TOKEN_OFFSETS, LOGPROBS, ENTROPIES,
]
TOKEN_ARRAY_COLUMNS = [TOKEN_IDS, TOKEN_OFFSETS, LOGPROBS, ENTROPIES, PLANNING_MASK, ADVANTAGES]
