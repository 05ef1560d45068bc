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
  'kind': 'manual',
  'title': 'QLoRA vs LoRA, tuning and regularisers on your text',
  'template': '**Questions 2-4.** Repeat the adaptation with QLoRA (`method="qlora"`), tune r, lora_alpha, '
              'lora_dropout and the\n'
              'learning rate, and compare the regularisers on your text (sections 3-6 show how). In a few '
              'sentences: how do\n'
              'QLoRA and LoRA compare in memory, speed and perplexity, which setting mattered most, and did '
              'any regulariser help?\n'
              '\n'
              '*Your answer:* (write it here, with the numbers you measured.)',
  'rubric': 'Rubric (2 points). 1 point: compares QLoRA with LoRA on all three of memory (base-weight memory '
            'is the fair\n'
            "measure on a CPU), speed and perplexity, with the student's own numbers. 1 point: names the "
            'setting that\n'
            'moved perplexity most in their sweep and says whether a regulariser helped, aware that a short '
            'run with few\n'
            'steps rarely over-fits.'}]
# The notebook objects the checks take: each submission's kernel exports these (and its records) as claims.
EXPORTS = ['result']


# %% public checks (notebooks/04_finetuning_lora.py cell 24; also in the student notebook)
@twdl.question_check(
    "q1", required=True, hint="result = lm.adapt(...) trains LoRA adapters on your text"
)
def adapters_only_are_trained(result):
    """`result["model"]` carries LoRA adapters, and only they are trainable"""
    names = twdl.each((n for n, p in result["model"].named_parameters() if p.requires_grad),
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


twdl.questions.hidden_section()  # the checks below are hidden: only the grader runs them


# %% hidden checks (notebooks/04_finetuning_lora.py cell 25)
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
