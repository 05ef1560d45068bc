"""Grader-only checks of notebooks/04_finetuning_lora.py, written by `twdl sync`: do not edit, never give to students.

`twdl grade --module 04_finetuning_lora` runs this whole file in its trusted scorer, never in a submission's kernel: the
checks (public and hidden) take the objects it rebuilt from the submission's exported claims (EXPORTS).
"""
MODULE = '04_finetuning_lora'
QUESTIONS = [{'id': 'q1',
  'points': 4.0,
  'kind': 'auto',
  'title': 'LoRA on your own text: perplexity before and after',
  'template': '',
  'rubric': ''},
 {'id': 'q2',
  'points': 2.0,
  'kind': 'auto',
  'title': 'QLoRA on your text: the same adaptation on a 4-bit base',
  'template': '',
  'rubric': ''},
 {'id': 'q2_written',
  'points': 1.0,
  'kind': 'manual',
  'title': 'QLoRA against LoRA: memory, speed and perplexity',
  'template': '**Question 2, written.** From your two runs: how do QLoRA and LoRA compare in memory (say '
              'which\n'
              'measurement you use and what it can see: the counted breakdown, CPU RSS or CUDA allocated), '
              'in speed and\n'
              'in perplexity? Which kind of memory does QLoRA shrink, and which does it leave as it is?\n'
              '\n'
              '*Your answer:* (write it here, with the numbers you measured.)',
  'rubric': 'Rubric (1 point). ½ point: compares QLoRA with LoRA on memory, speed and perplexity with the '
            "student's own\n"
            'numbers, naming the memory measure (on a CPU, RSS sees the whole process and is not the '
            "lesson's number; the\n"
            'counted breakdown or the base-weight size is). ½ point: says that QLoRA shrinks the frozen '
            'weights (about\n'
            '0.5 byte per quantised weight instead of 4) while gradients, optimiser state and activations '
            'stay as in\n'
            'LoRA, and that QLoRA is usually slower because every forward pass dequantises the weights; one '
            'seed cannot tell a small\n'
            'perplexity difference from noise.'},
 {'id': 'q3',
  'points': 2.0,
  'kind': 'auto',
  'title': 'Tuning on your text: choose on the tuning part, report on the held-out part',
  'template': '',
  'rubric': ''},
 {'id': 'q3_written',
  'points': 1.0,
  'kind': 'manual',
  'title': 'Tuning: what the choice tells you',
  'template': '**Question 3, written.** Which setting did you choose, by how much did it beat the defaults '
              'on the tuning\n'
              'part, and what is its held-out perplexity? Why is the held-out number the one to report, and '
              'what would\n'
              'you need before saying the chosen setting is *better* than the defaults?\n'
              '\n'
              '*Your answer:* (write it here, with the numbers you measured.)',
  'rubric': 'Rubric (1 point). ½ point: reports the chosen setting, its tuning perplexity against the '
            "defaults' and\n"
            "its held-out perplexity, from the student's run. ½ point: explains that the tuning part picked "
            'the\n'
            'setting and so flatters it, while the held-out part saw no choice; and that a claim of "better" '
            'needs the\n'
            'comparison repeated over at least 3 seeds (or data draws) with the difference beyond their '
            'spread; a\n'
            'chosen value at the edge of the grid calls for a wider grid.'},
 {'id': 'q4',
  'points': 1.0,
  'kind': 'auto',
  'title': 'Regularisers on your text: choose on the tuning part',
  'template': '',
  'rubric': ''},
 {'id': 'q4_written',
  'points': 1.0,
  'kind': 'manual',
  'title': 'Regularisers: did any help?',
  'template': '**Question 4, written.** Which regulariser scored best on the tuning part, by how much '
              'against none, and\n'
              'its held-out perplexity? Can your run say that it helps? What would you change to see '
              'over-fitting, where\n'
              'regularisers have something to prevent?\n'
              '\n'
              '*Your answer:* (write it here, with the numbers you measured.)',
  'rubric': "Rubric (1 point). ½ point: reports the best regulariser's tuning perplexity against none's and "
            'its held-out\n'
            "perplexity, from the student's run. ½ point: says that one seed cannot separate a regulariser "
            'from none (a\n'
            'verdict needs at least 3 seeds and a difference beyond their spread) and that a short run '
            'rarely\n'
            'over-fits: more steps, a smaller text or a larger rank would show over-fitting first.'}]
# The notebook objects the checks take: each submission's kernel exports these (and its records) as claims.
EXPORTS = ['qlora_result', 'regs', 'result', 'tuned']


# %% public checks (notebooks/04_finetuning_lora.py cell 27; also in the student notebook)
@twdl.question_check(
    "q1", required=True, hint="result = lm.adapt(...) trains LoRA adapters on your text"
)
def adapters_only_are_trained(result):
    """`result["model"]` carries LoRA adapters, and only they are trainable"""
    weights = result["model"].named_parameters()
    names = twdl.each((n for n, p in weights if p.requires_grad),
                      at_least=1, what="trainable weights")
    assert all(
        "lora_" in n for n in names
    ), f"trainable weights besides the adapters: {names[:3]}"


@twdl.question_check(
    "q1", required=True, hint="keep the dict lm.adapt returned, unchanged"
)
def after_is_the_adapted_models_perplexity(result):
    """the adapted model, evaluated on the held-out blocks, gives
    `result["perplexity_after"]`"""
    measured = twdl.lm.perplexity(result["model"], result["held_blocks"].input_ids)
    reported = result["perplexity_after"]
    assert (
        abs(measured - reported) <= 1e-3 * reported
    ), f"reported {reported:.4g}, the model gives {measured:.4g}"


@twdl.question_check("q1")
def perplexity_fell(result):
    """the perplexity after adaptation is below the perplexity before"""
    before, after = result["perplexity_before"], result["perplexity_after"]
    assert after < before, (
        f"after {after:.4g} is not below before {before:.4g}: more steps, or another"
        " rate?"
    )


@twdl.question_check(
    "q1",
    hint=(
        "twdl.record('m4.homework.ppl_before', ...) and ('m4.homework.ppl_after', ...)"
    ),
)
def perplexities_are_recorded(result, records):
    """m4.homework.ppl_before and m4.homework.ppl_after are recorded from `result`"""
    for name, key in (
        ("m4.homework.ppl_before", "perplexity_before"),
        ("m4.homework.ppl_after", "perplexity_after"),
    ):
        twdl.assert_recorded(records, name, result[key], 1e-9 * max(1.0, result[key]),
                             f"result[{key!r}] is")


twdl.check("q1")


# %% public checks (notebooks/04_finetuning_lora.py cell 30; also in the student notebook)
@twdl.question_check(
    "q2", required=True, hint="qlora_result = lm.adapt(..., method='qlora')"
)
def qlora_adapters_on_a_4bit_base(qlora_result):
    """`qlora_result["model"]` has 4-bit (NF4) base layers, and only its LoRA adapters
    are trainable"""
    model = qlora_result["model"]
    assert twdl.lm.count_4bit_layers(model) > 0, "no 4-bit layers: was method='qlora'?"
    names = twdl.each((n for n, p in model.named_parameters() if p.requires_grad),
                      at_least=1, what="trainable weights")
    assert all("lora_" in n for n in names), f"not only adapters train: {names[:3]}"


@twdl.question_check(
    "q2", required=True, hint="keep the dict lm.adapt returned, unchanged"
)
def qlora_after_is_the_adapted_models_perplexity(qlora_result):
    """the QLoRA model, evaluated on its held-out blocks, gives
    `qlora_result["perplexity_after"]`"""
    held = qlora_result["held_blocks"].input_ids
    measured = twdl.lm.perplexity(qlora_result["model"], held)
    reported = qlora_result["perplexity_after"]
    assert (
        abs(measured - reported) <= 1e-3 * reported
    ), f"reported {reported:.4g}, the model gives {measured:.4g}"


@twdl.question_check(
    "q2", hint="the same text_path, block_size and max_blocks as question 1"
)
def scored_on_the_same_blocks_as_lora(qlora_result, result):
    """QLoRA (question 2) and LoRA (question 1) are scored on the same held-out blocks,
    so their perplexities compare"""
    import torch

    mine, lora = qlora_result["held_blocks"].input_ids, result["held_blocks"].input_ids
    assert mine.shape == lora.shape and torch.equal(
        mine.cpu(), lora.cpu()
    ), "held-out blocks differ from question 1's: use the same text and block settings"


@twdl.question_check("q2", hint="twdl.record('m4.homework.qlora.ppl_after', ...)")
def qlora_perplexity_is_recorded(qlora_result, records):
    """m4.homework.qlora.ppl_after is recorded from `qlora_result`"""
    value = qlora_result["perplexity_after"]
    twdl.assert_recorded(records, "m4.homework.qlora.ppl_after", value,
                         1e-9 * max(1.0, value), "qlora_result['perplexity_after'] is")


twdl.check("q2")


# %% public checks (notebooks/04_finetuning_lora.py cell 34; also in the student notebook)
@twdl.question_check(
    "q3", required=True, hint="tuned = lm.choose_on_text(...), two candidates or more"
)
def choice_is_the_lowest_tuning_perplexity(tuned):
    """`tuned["chosen"]` is the candidate with the lowest tuning perplexity in
    `tuned["table"]`, among at least two candidates"""
    table = tuned["table"]
    assert len(table) >= 2, f"{len(table)} candidate(s): compare at least two settings"
    best = table["tuning_perplexity"].idxmin()
    assert tuned["chosen"] == best, f"chosen {tuned['chosen']!r}, lowest: {best!r}"


@twdl.question_check("q3", required=True, hint="keep what lm.choose_on_text returned")
def model_has_the_chosen_settings(tuned):
    """the returned model's adapters have the chosen candidate's rank, alpha and
    dropout"""
    config = tuned["model"].peft_config["default"]
    row = tuned["table"].loc[tuned["chosen"]]
    got = (config.r, float(config.lora_alpha), float(config.lora_dropout))
    want = (int(row["r"]), float(row["alpha"]), float(row["dropout"]))
    assert got == want, f"model (r, alpha, dropout) {got}, the chosen row {want}"


@twdl.question_check("q3", required=True, hint="keep what lm.choose_on_text returned")
def held_out_is_the_chosen_models_perplexity(tuned):
    """the chosen model, evaluated on the held-out blocks, gives
    `tuned["perplexity_held_out"]`"""
    measured = twdl.lm.perplexity(tuned["model"], tuned["held_blocks"].input_ids)
    reported = tuned["perplexity_held_out"]
    assert (
        abs(measured - reported) <= 1e-3 * reported
    ), f"reported {reported:.4g}, the model gives {measured:.4g}"


@twdl.question_check(
    "q3", hint="twdl.record('m4.homework.tuning.chosen', ...), ('...ppl_held_out', ...)"
)
def tuning_choice_is_recorded(tuned, records):
    """m4.homework.tuning.chosen and m4.homework.tuning.ppl_held_out are recorded from
    `tuned`"""
    chosen = records.get("m4.homework.tuning.chosen")
    assert chosen == tuned["chosen"], f"recorded {chosen!r}, chosen {tuned['chosen']!r}"
    value = tuned["perplexity_held_out"]
    twdl.assert_recorded(records, "m4.homework.tuning.ppl_held_out", value,
                         1e-9 * max(1.0, value), "tuned['perplexity_held_out'] is")


twdl.check("q3")


# %% public checks (notebooks/04_finetuning_lora.py cell 38; also in the student notebook)
@twdl.question_check(
    "q4", required=True, hint="regs = lm.choose_on_text(..., lm.regularizer_settings())"
)
def every_regulariser_against_none(regs):
    """`regs["table"]` compares no regulariser ("none") with at least two
    regularisers, and `regs["chosen"]` is the lowest tuning perplexity"""
    table = regs["table"]
    assert "none" in table.index, "no 'none' row: compare against no regulariser"
    assert len(table) >= 3, f"{len(table)} rows: compare two regularisers or more"
    best = table["tuning_perplexity"].idxmin()
    assert regs["chosen"] == best, f"chosen {regs['chosen']!r}, lowest: {best!r}"


@twdl.question_check("q4", required=True, hint="keep what lm.choose_on_text returned")
def regularised_held_out_is_the_models_perplexity(regs):
    """the chosen model, evaluated on the held-out blocks, gives
    `regs["perplexity_held_out"]`"""
    measured = twdl.lm.perplexity(regs["model"], regs["held_blocks"].input_ids)
    reported = regs["perplexity_held_out"]
    assert (
        abs(measured - reported) <= 1e-3 * reported
    ), f"reported {reported:.4g}, the model gives {measured:.4g}"


@twdl.question_check("q4", hint="twdl.record('m4.homework.reg.chosen', regs['chosen'])")
def regulariser_choice_is_recorded(regs, records):
    """m4.homework.reg.chosen is recorded from `regs`"""
    chosen = records.get("m4.homework.reg.chosen")
    assert chosen == regs["chosen"], f"recorded {chosen!r}, chosen {regs['chosen']!r}"


twdl.check("q4")


twdl.questions.hidden_section()  # the checks below are hidden: only the grader runs them


# %% hidden checks (notebooks/04_finetuning_lora.py cell 28)
@twdl.question_check("q1", required=True, time_limit=120)
def perplexities_hold_on_blocks_the_grader_rebuilds(result):
    """from the held-out text itself, the grader rebuilds the held-out blocks; a fresh base model and the adapted
    one give the reported perplexities there"""
    import torch

    built, model = result["built_from"], result["model"]
    base_name = model.base_model.model.config.name_or_path  # the grader's own copy of the base model
    tokenizer = twdl.lm.load_tokenizer(base_name)
    held = twdl.lm.make_blocks(built["held_out_text"], tokenizer, built["block_size"], built["max_blocks"]).input_ids
    assert torch.equal(held.cpu(), result["held_blocks"].input_ids.cpu()), "the held-out blocks are not the text's"
    base = twdl.lm.load_model(base_name, next(model.parameters()).device)
    for label, net, reported in (("before", base, result["perplexity_before"]), ("after", model, result["perplexity_after"])):
        measured = twdl.lm.perplexity(net, held)
        assert abs(measured - reported) <= 1e-3 * reported, f"{label}: reported {reported:.4g}, measured {measured:.4g}"


# %% hidden checks (notebooks/04_finetuning_lora.py cell 31)
@twdl.question_check("q2", required=True, time_limit=120)
def qlora_perplexity_holds_on_blocks_the_grader_rebuilds(qlora_result):
    """from the held-out text itself, the grader rebuilds the held-out blocks; the QLoRA model gives the
    reported perplexity there"""
    import torch

    built, model = qlora_result["built_from"], qlora_result["model"]
    tokenizer = twdl.lm.load_tokenizer(model.base_model.model.config.name_or_path)
    held = twdl.lm.make_blocks(built["held_out_text"], tokenizer, built["block_size"],
                               built["max_blocks"]).input_ids
    assert torch.equal(held.cpu(), qlora_result["held_blocks"].input_ids.cpu()), \
        "the held-out blocks are not the text's"
    measured, reported = twdl.lm.perplexity(model, held), qlora_result["perplexity_after"]
    assert abs(measured - reported) <= 1e-3 * reported, f"reported {reported:.4g}, measured {measured:.4g}"


# %% hidden checks (notebooks/04_finetuning_lora.py cell 35)
@twdl.question_check("q3", required=True, time_limit=180)
def choice_was_made_on_tuning_text_the_held_out_never_saw(tuned):
    """from the texts themselves the grader rebuilds the tuning and held-out blocks: they are the returned
    ones, they differ, and the chosen model scores the table's tuning perplexity on the tuning blocks"""
    import torch

    built, model = tuned["built_from"], tuned["model"]
    assert built["tuning_text"].strip() and built["held_out_text"].strip(), "an empty tuning or held-out text"
    assert built["held_out_text"] not in built["tuning_text"], "the held-out text is inside the tuning text"
    tokenizer = twdl.lm.load_tokenizer(model.base_model.model.config.name_or_path)
    rebuilt = {part: twdl.lm.make_blocks(built[f"{part}_text"], tokenizer, built["block_size"],
                                         built["max_blocks"]).input_ids for part in ("tuning", "held_out")}
    assert torch.equal(rebuilt["tuning"].cpu(), tuned["tuning_blocks"].input_ids.cpu()), "tuning blocks differ"
    assert torch.equal(rebuilt["held_out"].cpu(), tuned["held_blocks"].input_ids.cpu()), "held-out blocks differ"
    measured = twdl.lm.perplexity(model, rebuilt["tuning"])
    reported = float(tuned["table"].loc[tuned["chosen"], "tuning_perplexity"])
    assert abs(measured - reported) <= 1e-3 * reported, f"tuning: table {reported:.4g}, model {measured:.4g}"
