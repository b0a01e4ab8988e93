"""DVC stage of a study kind's own step (`gad_support@<alpha>`: ``python stages/step.py gad
support <alpha>``), run between train and attribute once per value of a params list ->
metrics/<study>/<step>/<argument><value>.json (and whatever models the step fits)."""

from xaibench.tracking import stage_run, start_worker

start_worker()   # MLflow loads in a process of its own, on the other core, while this one imports torch

from xaibench.atomic import write_json
from xaibench.params import load_params
from xaibench.schema import ParamsError
from xaibench.stage_setup import run_stage, setup_stage
from xaibench.studies import study_kind, study_source


def main(name: str, step: str, value: str) -> None:
    params = load_params()
    setup_stage(params.seed)
    study = params.study(name)
    steps = study_kind(study.kind).steps
    if step not in steps:
        raise ParamsError(f"stages/step.py: the {study.kind} study {name!r} has no step {step!r} "
                          f"(its steps: {sorted(steps) or 'none'})")
    spec = steps[step]
    try:
        converted = spec.convert(value)
    except ValueError as error:
        raise ParamsError(f"stages/step.py: bad argument {spec.argument}={value!r} ({error})") from None
    with stage_run(name, f"{step} {spec.argument} {value}", {spec.argument: converted},
                   study_source(name, study, params)) as run:
        result = spec.run(name, study, params, run, converted)
    write_json(f"metrics/{name}/{step}/{spec.argument}{value}.json", result)


if __name__ == "__main__":
    run_stage(main, "study", "step", "value")
