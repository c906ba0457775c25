"""Every label and message of the UI in English and Bahasa Indonesia (the original's language).

``t(key, lang, **values)`` formats a text; a test checks that both languages have every key
with the same ``{placeholders}``.
"""

from __future__ import annotations

LANGUAGES: dict[str, str] = {"en": "English", "id": "Bahasa Indonesia"}

TEXTS: dict[str, dict[str, str]] = {
    # page and sidebar
    "title": {"en": "Smart-home device insights", "id": "Wawasan perangkat smart home"},
    "subtitle": {
        "en": "Predictions from the newest model set trained on the Kafka stream.",
        "id": "Prediksi dari set model terbaru yang dilatih dari stream Kafka.",
    },
    "language": {"en": "Language", "id": "Bahasa"},
    "api_url": {"en": "API URL", "id": "URL API"},
    "api_url_help": {
        "en": "Where app_api.py listens (env API_URL).",
        "id": "Alamat app_api.py berjalan (env API_URL).",
    },
    # status
    "status": {"en": "Status", "id": "Status"},
    "status_ok": {"en": "API reachable", "id": "API dapat dihubungi"},
    "status_set": {"en": "Model set", "id": "Set model"},
    "status_trained": {"en": "Trained", "id": "Dilatih"},
    "status_rows": {"en": "Rows trained on", "id": "Jumlah baris latih"},
    "status_checked": {"en": "Checked at {time}", "id": "Diperiksa pukul {time}"},
    "unknown": {"en": "unknown", "id": "tidak diketahui"},
    # errors (one per ApiError.kind)
    "err_unreachable": {
        "en": "Cannot reach the API at {url}. Start it with `python app_api.py` "
        "(or `make demo`), or correct the API URL in the sidebar.",
        "id": "API di {url} tidak dapat dihubungi. Jalankan dengan `python app_api.py` "
        "(atau `make demo`), atau perbaiki URL API di sidebar.",
    },
    "err_timeout": {
        "en": "The API at {url} did not answer in time; it may be busy. Try again in a moment.",
        "id": "API di {url} tidak menjawab tepat waktu; mungkin sedang sibuk. "
        "Coba lagi sebentar lagi.",
    },
    "err_not_found": {
        "en": "The API at {url} does not know this request ({message}). Is the API URL right "
        "and the API up to date?",
        "id": "API di {url} tidak mengenal permintaan ini ({message}). Apakah URL API benar "
        "dan API versi terbaru?",
    },
    "err_invalid": {
        "en": "The API rejected the input: {message}",
        "id": "API menolak input: {message}",
    },
    "err_no_model": {
        "en": "The API is running but has no model set yet. Train one with "
        "`spark-submit spark_training.py`; it is picked up without a restart.",
        "id": "API berjalan tetapi belum ada set model. Latih dengan "
        "`spark-submit spark_training.py`; set baru dimuat tanpa restart.",
    },
    "err_server": {
        "en": "The API failed ({message}). See the API's log.",
        "id": "API gagal ({message}). Lihat log API.",
    },
    "err_bad_response": {
        "en": "The API answered with something unexpected ({message}). Is {url} the "
        "smart-home API?",
        "id": "Jawaban API tidak sesuai ({message}). Apakah {url} benar API smart home?",
    },
    # tabs
    "tab_efficiency": {"en": "Efficiency", "id": "Efisiensi"},
    "tab_malfunction": {"en": "Malfunctions", "id": "Kerusakan"},
    "tab_segment": {"en": "Segment", "id": "Segmen"},
    "tab_bulk": {"en": "Bulk predictions", "id": "Prediksi massal"},
    "tab_history": {"en": "Model history", "id": "Riwayat model"},
    "tab_segments": {"en": "Segments", "id": "Segmen perangkat"},
    # form inputs
    "DeviceType": {"en": "Device type", "id": "Jenis perangkat"},
    "UsageHoursPerDay": {"en": "Usage (hours per day)", "id": "Pemakaian (jam per hari)"},
    "EnergyConsumption": {
        "en": "Energy consumption (kWh per day)",
        "id": "Konsumsi energi (kWh per hari)",
    },
    "UserPreferences": {
        "en": "User preferences (0 = off, 1 = on)",
        "id": "Preferensi pengguna (0 = mati, 1 = aktif)",
    },
    "MalfunctionIncidents": {"en": "Malfunction incidents", "id": "Insiden kerusakan"},
    "DeviceAgeMonths": {"en": "Device age (months)", "id": "Usia perangkat (bulan)"},
    "SmartHomeEfficiency": {"en": "Efficient (0/1)", "id": "Efisien (0/1)"},
    # forms and results
    "efficiency_intro": {
        "en": "Is this device used efficiently?",
        "id": "Apakah perangkat ini digunakan secara efisien?",
    },
    "malfunction_intro": {
        "en": "How many malfunction incidents should we expect?",
        "id": "Berapa insiden kerusakan yang dapat diperkirakan?",
    },
    "segment_intro": {
        "en": "Which group of similar devices does this one belong to?",
        "id": "Perangkat ini termasuk kelompok perangkat serupa yang mana?",
    },
    "submit_efficiency": {"en": "Predict efficiency", "id": "Prediksi efisiensi"},
    "submit_malfunction": {"en": "Predict malfunctions", "id": "Prediksi kerusakan"},
    "submit_segment": {"en": "Find segment", "id": "Cari segmen"},
    "result": {"en": "Prediction", "id": "Prediksi"},
    "efficient": {"en": "Efficient", "id": "Efisien"},
    "not_efficient": {"en": "Not efficient", "id": "Tidak efisien"},
    "probability": {"en": "Probability", "id": "Probabilitas"},
    "efficiency_summary": {
        "en": "The model says **{label}** with probability **{probability}**.",
        "id": "Model memprediksi **{label}** dengan probabilitas **{probability}**.",
    },
    "malfunctions": {"en": "Expected malfunction incidents", "id": "Perkiraan insiden kerusakan"},
    "segment_id": {"en": "Segment", "id": "Segmen"},
    "from_set": {"en": "Answered by model set {set}.", "id": "Dijawab oleh set model {set}."},
    "segment_vs_avg": {
        "en": "How segment {id} differs from the average device",
        "id": "Perbedaan segmen {id} dengan rata-rata perangkat",
    },
    "your_device": {"en": "Your device", "id": "Perangkat Anda"},
    "segment_mean": {"en": "Segment average", "id": "Rata-rata segmen"},
    "overall_mean": {"en": "All devices", "id": "Semua perangkat"},
    "diff_pct": {"en": "Difference from average (%)", "id": "Selisih dari rata-rata (%)"},
    "feature": {"en": "Feature", "id": "Fitur"},
    # bulk
    "bulk_intro": {
        "en": "Upload a CSV with the columns {columns} (other columns such as UserID are "
        "kept). You get the three predictions for every row.",
        "id": "Unggah CSV dengan kolom {columns} (kolom lain seperti UserID dipertahankan). "
        "Anda mendapat tiga prediksi untuk setiap baris.",
    },
    "bulk_upload": {"en": "CSV file of devices", "id": "File CSV perangkat"},
    "bulk_template": {"en": "Download an example CSV", "id": "Unduh contoh CSV"},
    "bulk_summary_ok": {
        "en": "{total} rows, all predicted.",
        "id": "{total} baris, semuanya diprediksi.",
    },
    "bulk_summary": {
        "en": "{total} rows: {ok} predicted, {bad} rejected (see the error column).",
        "id": "{total} baris: {ok} diprediksi, {bad} ditolak (lihat kolom error).",
    },
    "bulk_download": {"en": "Download the predictions", "id": "Unduh hasil prediksi"},
    "bulk_unreadable": {
        "en": "This file is not a readable CSV ({reason}).",
        "id": "File ini bukan CSV yang dapat dibaca ({reason}).",
    },
    "bulk_missing": {
        "en": "The CSV lacks the column(s) {columns}. Required: {required}.",
        "id": "CSV tidak memiliki kolom {columns}. Wajib: {required}.",
    },
    "bulk_empty": {"en": "The CSV has no rows.", "id": "CSV tidak berisi baris."},
    "bulk_too_many": {
        "en": "The CSV has {rows} rows; at most {limit} are accepted. Split the file.",
        "id": "CSV berisi {rows} baris; maksimal {limit}. Bagi file menjadi beberapa.",
    },
    # history
    "history_intro": {
        "en": "Each model set is trained on all batches so far; these curves show how the "
        "held-out metrics change as the models see more rows. Dashed: a trivial baseline "
        "(majority class / mean) on the same split.",
        "id": "Setiap set model dilatih pada semua batch sejauh ini; kurva ini menunjukkan "
        "perubahan metrik uji seiring bertambahnya baris. Putus-putus: baseline sederhana "
        "(kelas mayoritas / rata-rata) pada data uji yang sama.",
    },
    "history_none": {
        "en": "No model set yet. Train one with `spark-submit spark_training.py`.",
        "id": "Belum ada set model. Latih dengan `spark-submit spark_training.py`.",
    },
    "history_one_set": {
        "en": "Only one model set so far: the curves grow as the pipeline trains more sets.",
        "id": "Baru ada satu set model: kurva bertambah seiring pipeline melatih set baru.",
    },
    "history_unreadable": {
        "en": "Model set {set} is left out of the charts: {error}",
        "id": "Set model {set} tidak ditampilkan di grafik: {error}",
    },
    "metric_accuracy": {
        "en": "Efficiency classifier: accuracy",
        "id": "Klasifikasi efisiensi: akurasi",
    },
    "metric_rmse": {"en": "Malfunction regressor: RMSE", "id": "Regresi kerusakan: RMSE"},
    "metric_silhouette": {
        "en": "Device segments: silhouette",
        "id": "Segmen perangkat: silhouette",
    },
    "metric_efficient_share_spread": {
        "en": "Device segments: efficient share, most minus least efficient segment",
        "id": "Segmen perangkat: porsi efisien, segmen paling efisien dikurangi "
        "yang paling tidak efisien",
    },
    "rows": {"en": "Rows trained on", "id": "Baris latih"},
    "model": {"en": "Model", "id": "Model"},
    "baseline": {"en": "Baseline", "id": "Baseline"},
    "sets_table": {"en": "All model sets", "id": "Semua set model"},
    "set": {"en": "Set", "id": "Set"},
    # segments
    "segments_intro": {
        "en": "The KMeans segments of the loaded model set, grouped by how devices are used "
        "(not by their type): how each differs from the average device, its share of "
        "efficient devices, its device-type mix, and its generated description.",
        "id": "Segmen KMeans dari set model yang dimuat, dikelompokkan menurut cara perangkat "
        "digunakan (bukan jenisnya): perbedaannya dengan rata-rata perangkat, porsi perangkat "
        "efisien, komposisi jenis perangkat, dan deskripsi yang dihasilkan.",
    },
    "segment_header": {
        "en": "Segment {id}: {size} devices ({share})",
        "id": "Segmen {id}: {size} perangkat ({share})",
    },
    "device_mix": {"en": "Device-type mix", "id": "Komposisi jenis perangkat"},
    "device": {"en": "Device type", "id": "Jenis perangkat"},
    "share": {"en": "Share", "id": "Porsi"},
    "efficiency_rate": {"en": "Efficient devices", "id": "Perangkat efisien"},
    # pipeline
    "tab_pipeline": {"en": "Pipeline", "id": "Pipeline"},
    "pipe_intro": {
        "en": "The stream, live: records flow from the producer through the Kafka topic and "
        "the consumer into batch files, Spark trains model sets, the API serves the newest; "
        "the stream scorer predicts each record as it arrives.",
        "id": "Stream secara langsung: record mengalir dari producer melalui topik Kafka dan "
        "consumer ke file batch, Spark melatih set model, API menyajikan yang terbaru; "
        "scorer stream memprediksi setiap record saat tiba.",
    },
    "pipe_producer": {"en": "Producer", "id": "Producer"},
    "pipe_topic": {"en": "Topic", "id": "Topik"},
    "pipe_consumer": {"en": "Consumer lag", "id": "Lag consumer"},
    "pipe_batches": {"en": "Batch files", "id": "File batch"},
    "pipe_training": {"en": "Training", "id": "Pelatihan"},
    "pipe_api": {"en": "API: newest set", "id": "API: set terbaru"},
    "pipe_rate": {"en": "records/s into the topic", "id": "record/detik ke topik"},
    "pipe_rate_axis": {"en": "records/s", "id": "record/detik"},
    "pipe_records": {"en": "records in {topic}", "id": "record di {topic}"},
    "pipe_lag": {"en": "records not yet in a batch file", "id": "record belum di file batch"},
    "pipe_rows": {"en": "{rows} rows", "id": "{rows} baris"},
    "pipe_training_now": {"en": "set {set}…", "id": "set {set}…"},
    "pipe_trainer_waiting": {"en": "waiting", "id": "menunggu"},
    "pipe_trainer_waiting_caption": {
        "en": "spark_training.py waits for new batch files; {count} model sets",
        "id": "spark_training.py menunggu file batch baru; {count} set model",
    },
    "pipe_trainer_stopped": {"en": "not running", "id": "tidak berjalan"},
    "pipe_scorer": {"en": "Stream scorer: lag", "id": "Scorer stream: lag"},
    "pipe_scorer_unknown": {
        "en": "unknown while Kafka does not answer",
        "id": "tidak diketahui selama Kafka tidak menjawab",
    },
    "pipe_scorer_offsets": {"en": "{count} offsets in {topic}", "id": "{count} offset di {topic}"},
    "pipe_scorer_members": {
        "en": "{count} scorer process(es); {size}",
        "id": "{count} proses scorer; {size}",
    },
    "pipe_scorer_none": {
        "en": "no scorer running; {size}",
        "id": "tidak ada scorer yang berjalan; {size}",
    },
    "pipe_scorer_committed": {"en": "Scorer committed", "id": "Scorer di-commit"},
    "pipe_scorer_lag": {"en": "Scorer lag", "id": "Lag scorer"},
    "pipe_sets": {"en": "{count} model sets", "id": "{count} set model"},
    "pipe_newest_age": {"en": "trained {age} ago", "id": "dilatih {age} lalu"},
    "pipe_no_set": {"en": "no model set yet", "id": "belum ada set model"},
    "pipe_kafka_down": {
        "en": "Kafka does not answer at {servers}: {error}",
        "id": "Kafka tidak menjawab di {servers}: {error}",
    },
    "pipe_set_unreadable": {
        "en": "The newest model set's manifest cannot be read: {error}",
        "id": "Manifest set model terbaru tidak dapat dibaca: {error}",
    },
    "pipe_rejected": {
        "en": "{count} rejected messages (in rejected/)",
        "id": "{count} pesan ditolak (di rejected/)",
    },
    "pipe_partition": {"en": "Partition", "id": "Partisi"},
    # live
    "tab_live": {"en": "Live", "id": "Langsung"},
    "live_intro": {
        "en": "Every record scored as it arrives: the stream scorer's newest predictions and "
        "alerts, as committed to Kafka (refreshed every couple of seconds).",
        "id": "Setiap record dinilai saat tiba: prediksi dan peringatan terbaru dari scorer "
        "stream, sebagaimana di-commit ke Kafka (diperbarui setiap beberapa detik).",
    },
    "live_predictions": {"en": "Recent predictions", "id": "Prediksi terkini"},
    "live_alerts": {"en": "Recent alerts", "id": "Peringatan terkini"},
    "live_newest_n": {"en": "the newest {n} at most", "id": "paling banyak {n} terbaru"},
    "live_rate": {"en": "Predictions/s", "id": "Prediksi/detik"},
    "live_rate_caption": {"en": "no prediction yet", "id": "belum ada prediksi"},
    "live_newest_age": {
        "en": "newest scored {age} s ago",
        "id": "terbaru dinilai {age} detik lalu",
    },
    "live_latency_p50": {"en": "Latency (median)", "id": "Latensi (median)"},
    "live_latency_max": {
        "en": "record produced → scored; max {max}",
        "id": "record dikirim → dinilai; maks {max}",
    },
    "live_alerts_title": {"en": "Newest alerts ({topic})", "id": "Peringatan terbaru ({topic})"},
    "live_predictions_title": {
        "en": "Newest predictions ({topic})",
        "id": "Prediksi terbaru ({topic})",
    },
    "live_none": {"en": "None yet.", "id": "Belum ada."},
    "live_kafka_down": {
        "en": "Kafka does not answer at {servers}: {error}",
        "id": "Kafka tidak menjawab di {servers}: {error}",
    },
    "live_unreadable": {
        "en": "{count} messages do not match their format and are not shown",
        "id": "{count} pesan tidak sesuai formatnya dan tidak ditampilkan",
    },
    "live_scored_at": {"en": "Scored at", "id": "Dinilai pukul"},
    "live_user": {"en": "User", "id": "Pengguna"},
    "live_label": {"en": "Efficiency", "id": "Efisiensi"},
    "live_probability": {"en": "Probability", "id": "Probabilitas"},
    "live_malfunctions": {"en": "Malfunctions", "id": "Kerusakan"},
    "live_segment": {"en": "Segment", "id": "Segmen"},
    "live_latency": {"en": "Latency (ms)", "id": "Latensi (ms)"},
    "live_reasons": {"en": "Why", "id": "Alasan"},
    "pipe_end_offset": {"en": "End offset", "id": "Offset akhir"},
    "pipe_committed": {"en": "Committed", "id": "Di-commit"},
    # the Drift tab (smarthome/ui/drift.py)
    "tab_drift": {"en": "Drift", "id": "Drift"},
    "drift_intro": {
        "en": "Each new batch file compared with the rows the champion set was trained on "
        "(Kolmogorov-Smirnov or chi-squared test, and PSI per column), and why each model set "
        "was or was not promoted to champion.",
        "id": "Setiap file batch baru dibandingkan dengan baris latih set champion (uji "
        "Kolmogorov-Smirnov atau chi-kuadrat, dan PSI per kolom), serta alasan setiap set "
        "model dipromosikan menjadi champion atau tidak.",
    },
    "drift_champion": {"en": "Champion (served set)", "id": "Champion (set yang dilayani)"},
    "drift_none": {
        "en": "No batch has been checked yet: batches are checked once a champion exists.",
        "id": "Belum ada batch yang diperiksa: batch diperiksa setelah ada champion.",
    },
    "drift_alarm": {
        "en": "Drift alarm on the newest batch {batch}: {columns}",
        "id": "Alarm drift pada batch terbaru {batch}: {columns}",
    },
    "drift_ok": {
        "en": "No drift in the newest batch {batch}.",
        "id": "Tidak ada drift pada batch terbaru {batch}.",
    },
    "drift_rule": {
        "en": "A column drifts when its test's p-value is below {alpha} and its PSI is at "
        "least {psi} (dashed line).",
        "id": "Sebuah kolom dianggap drift bila p-value ujinya di bawah {alpha} dan PSI-nya "
        "paling sedikit {psi} (garis putus-putus).",
    },
    "drift_psi_title": {"en": "PSI per column, batch by batch", "id": "PSI per kolom per batch"},
    "drift_alarm_title": {"en": "Drifted columns", "id": "Kolom yang drift"},
    "drift_batch": {"en": "Batch (checked order)", "id": "Batch (urutan diperiksa)"},
    "drift_batch_file": {"en": "Batch file", "id": "File batch"},
    "drift_column": {"en": "Column", "id": "Kolom"},
    "drift_test": {"en": "Test", "id": "Uji"},
    "drift_reference": {"en": "Compared with", "id": "Dibandingkan dengan"},
    "drift_drifted": {"en": "drifted", "id": "drift"},
    "drift_steady": {"en": "steady", "id": "stabil"},
    "drift_champion_col": {"en": "Champion", "id": "Champion"},
    "drift_verdict": {"en": "Gate", "id": "Gerbang"},
    "drift_reasons": {"en": "Why", "id": "Alasan"},
    "drift_promoted": {"en": "promoted", "id": "dipromosikan"},
    "drift_held": {"en": "not promoted", "id": "tidak dipromosikan"},
    "drift_undecided": {"en": "no decision", "id": "belum diputuskan"},
}


def t(key: str, lang: str = "en", **values: object) -> str:
    """The text ``key`` in ``lang`` (English when missing), with ``{placeholders}`` filled."""
    entry = TEXTS.get(key)
    if entry is None:
        return key
    text = entry.get(lang) or entry["en"]
    return text.format(**values) if values else text
