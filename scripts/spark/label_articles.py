#!/usr/bin/env python3
"""Label articles with stance on Apache Spark (issue 13).

Each partition is piped through ONE `stance predict --jsonl --format
articles --on-error skip -` subprocess (mapPartitions), so the model loads
once per partition, never per row. The `stance` binary and the model (and,
for a delta checkpoint, its base encoder) are shipped to the executors with
SparkContext.addFile, or, with --shared, used from a path every executor
can read.

Input: JSONL or Parquet with an id and a text column (named by --id-col and
--text-col). Output: Parquet, one row per sentence:

  article_id     string   the input id, as a string
  sentence_index int      0-based position of the sentence in the article
  start, end     int      character offsets into the article text
  text           string   the sentence
  label          string   assertion | denial | allegation | context
  probability    double   the label's calibrated probability
  probabilities  map<string,double>  every label's probability
  truncated      boolean  longer than the model's window (labelled from its start and end)

Articles stance could not label (empty text, say) come out as one row with
sentence_index -1, label null and the error in `text`, so nothing is lost
silently.

  spark-submit scripts/spark/label_articles.py --input articles.jsonl --output out.parquet \\
      --stance target/release/stance --model models/stance-mpnet --base models/all-mpnet-base-v2
"""
import argparse, json, os, subprocess, threading

from pyspark.sql import SparkSession, types as T

SCHEMA = T.StructType([
    T.StructField("article_id", T.StringType(), False),
    T.StructField("sentence_index", T.IntegerType(), False),
    T.StructField("start", T.IntegerType(), True),
    T.StructField("end", T.IntegerType(), True),
    T.StructField("text", T.StringType(), True),
    T.StructField("label", T.StringType(), True),
    T.StructField("probability", T.DoubleType(), True),
    T.StructField("probabilities", T.MapType(T.StringType(), T.DoubleType()), True),
    T.StructField("truncated", T.BooleanType(), True),
])


def label_partition(rows, stance, model, base, threads):
    """Pipe one partition's articles through one stance process."""
    env = dict(os.environ)
    if base:
        env["STANCE_BASE_DIR"] = base
    proc = subprocess.Popen(
        [stance, "--threads", str(threads), "predict", "--model", model, "--jsonl", "--format", "articles",
         "--on-error", "skip", "-"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)

    def feed():
        try:
            for aid, text in rows:
                proc.stdin.write((json.dumps({"id": aid, "text": text}) + "\n").encode())
        finally:
            proc.stdin.close()

    errors = []
    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    drain = threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True)
    drain.start()
    for line in proc.stdout:
        a = json.loads(line)
        if "error" in a:
            yield (str(a.get("id")), -1, None, None, a["error"], None, None, None, None)
            continue
        for s in a["sentences"]:
            yield (str(a["id"]), s["index"], s["start"], s["end"], s["text"], s["label"], float(s["probability"]),
                   {k: float(v) for k, v in s["probabilities"].items()}, bool(s["truncated"]))
    writer.join()
    code = proc.wait()
    drain.join()
    # 3: some lines were skipped (reported as rows above); anything else is a failure.
    if code not in (0, 3):
        raise RuntimeError(f"stance exited {code}: {b''.join(errors).decode(errors='replace')[-2000:]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", required=True)
    ap.add_argument("--input-format", choices=["jsonl", "parquet"], default=None, help="default: by extension")
    ap.add_argument("--id-col", default="id")
    ap.add_argument("--text-col", default="text")
    ap.add_argument("--output", required=True, help="Parquet directory (must not exist)")
    ap.add_argument("--stance", default="target/release/stance")
    ap.add_argument("--model", default="models/stance-mpnet")
    ap.add_argument("--base", default="models/all-mpnet-base-v2", help="base encoder of a delta checkpoint ('' for a full one)")
    ap.add_argument("--shared", action="store_true", help="use --stance/--model/--base as paths every executor can read, instead of shipping them")
    ap.add_argument("--partitions", type=int, default=None, help="default: Spark's parallelism")
    ap.add_argument("--threads", type=int, default=1, help="stance threads per partition process")
    ap.add_argument("--master", default=None, help="e.g. local[2] (default: spark-submit's)")
    a = ap.parse_args()
    if os.path.exists(a.output):
        raise SystemExit(f"--output {a.output} exists; stance's Spark job never replaces output it did not create")

    b = SparkSession.builder.appName("stance-label-articles")
    if a.master:
        b = b.master(a.master)
    spark = b.getOrCreate()
    sc = spark.sparkContext
    fmt = a.input_format or ("parquet" if a.input.endswith(".parquet") or os.path.isdir(a.input) else "jsonl")
    df = spark.read.parquet(a.input) if fmt == "parquet" else spark.read.json(a.input)
    for c in (a.id_col, a.text_col):
        if c not in df.columns:
            raise SystemExit(f"{a.input}: no column {c!r} (columns: {', '.join(df.columns)}); see --id-col / --text-col")
    rdd = df.select(df[a.id_col].cast("string"), df[a.text_col]).rdd.map(tuple)
    if a.partitions:
        rdd = rdd.repartition(a.partitions)

    if a.shared:
        stance, model, base = (os.path.abspath(p) if p else "" for p in (a.stance, a.model, a.base))
        locate = lambda: (stance, model, base)
    else:
        from pyspark import SparkFiles
        sc.addFile(os.path.abspath(a.stance))
        sc.addFile(os.path.abspath(a.model), recursive=True)
        if a.base:
            sc.addFile(os.path.abspath(a.base), recursive=True)
        names = (os.path.basename(a.stance), os.path.basename(a.model.rstrip("/")), os.path.basename(a.base.rstrip("/")) if a.base else "")
        def locate():
            stance = SparkFiles.get(names[0])
            os.chmod(stance, 0o755)
            return stance, SparkFiles.get(names[1]), SparkFiles.get(names[2]) if names[2] else ""
    threads = a.threads

    def run(rows):
        stance, model, base = locate()
        return label_partition(rows, stance, model, base, threads)

    out = spark.createDataFrame(rdd.mapPartitions(run), SCHEMA)
    out.write.parquet(a.output)
    spark.stop()


if __name__ == "__main__":
    main()
