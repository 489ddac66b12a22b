"""Data: what a task is and the GLUE presets (:mod:`.tasks`), files to examples (:mod:`.readers`),
labels and the hold-out (:mod:`.labels`), and from examples to batches with named random streams
(:mod:`.sampling`). Each name is importable from ``agwm.data`` itself."""

from agwm.errors import DataError  # noqa: F401

from .labels import (  # noqa: F401
    INTEGER,
    class_order,
    guess_task_type,
    label_key,
    label_problem,
    output_columns,
    refuse_output_columns,
    refuse_stray_non_numbers,
    stratified_holdout,
    to_examples,
)
from .readers import (  # noqa: F401
    DEFAULT_LABEL_COLUMN,
    DEFAULT_TEXT_COLUMNS,
    DELIMITERS,
    FORMATS,
    NO_ROWS,
    Examples,
    check_json_syntax,
    data_files,
    data_fingerprint,
    default_text_columns,
    delimiter_hint,
    delimiter_name,
    describe_task,
    load_files,
    load_from_hub,
    load_glue,
    load_split,
    load_test,
    read_delimited,
    read_glue_file,
    read_table,
    require_columns,
    written_quoted,
)
from .sampling import (  # noqa: F401
    generator,
    make_loader,
    random_splits,
    sample_examples,
    stream_seed,
    tokenize,
)
from .tasks import (  # noqa: F401
    CLASSIFICATION_METRICS,
    DATA_DIR_ENV,
    HUB_VALIDATION_SPLIT,
    METRICS,
    NLI,
    REGRESSION_METRICS,
    TASK_ALIASES,
    TASK_TYPES,
    TASKS,
    GluePreset,
    Task,
    get_preset,
    get_task,
    metric_error,
    resolve_data_dir,
)

