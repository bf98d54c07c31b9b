"""Static HTML reports (open from the file system, nothing fetched): a pipeline run's
tables, stage times and logs and worst-first galleries; an inference run's results."""
from .infer import write_infer_report
from .pipeline import write_pipeline_report

__all__ = ['write_infer_report', 'write_pipeline_report']
