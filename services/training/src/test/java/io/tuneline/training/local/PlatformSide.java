package io.tuneline.training.local;

import com.google.protobuf.util.Timestamps;
import io.tuneline.common.event.EventCodec;
import io.tuneline.common.event.OutgoingEvent;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.common.store.StoreSettings;
import io.tuneline.common.topic.Topics;
import io.tuneline.proto.v1.ArtifactRef;
import io.tuneline.proto.v1.TrainingCompleted;
import io.tuneline.proto.v1.TrainingProgress;
import io.tuneline.training.run.RunStore;
import java.nio.charset.StandardCharsets;
import java.util.Properties;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringSerializer;

/** What the fake worker does on the platform side: one progress event, a model, the result. */
final class PlatformSide {
    private PlatformSide() {}

    static void reportProgressAndResult(String jobId, int attempt) throws Exception {
        Properties props = new Properties();
        props.put("bootstrap.servers", System.getenv("KAFKA_BOOTSTRAP_SERVERS"));
        props.put("key.serializer", StringSerializer.class.getName());
        props.put("value.serializer", ByteArraySerializer.class.getName());
        OutgoingEvent progress =
                new EventCodec("/tuneline/training-worker")
                        .encode(
                                TrainingProgress.newBuilder()
                                        .setJobId(jobId)
                                        .setRunId(jobId + "-a" + attempt)
                                        .setStep(3)
                                        .setTotalSteps(3)
                                        .setLoss(0.25)
                                        .setTokensPerSecond(1234)
                                        .setReportedAt(Timestamps.now())
                                        .build());
        try (KafkaProducer<String, byte[]> producer = new KafkaProducer<>(props)) {
            var record =
                    new ProducerRecord<>(
                            Topics.TRAINING_PROGRESS, progress.key(), progress.value());
            progress.headers()
                    .forEach((k, v) -> record.headers().add(k, v.getBytes(StandardCharsets.UTF_8)));
            producer.send(record).get();
        }
        try (ArtifactStore store =
                new ArtifactStore(
                        new StoreSettings(
                                System.getenv("S3_ENDPOINT"),
                                System.getenv("S3_ACCESS_KEY"),
                                System.getenv("S3_SECRET_KEY"),
                                System.getenv("S3_BUCKET"),
                                "us-east-1",
                                StoreSettings.MIN_PART_SIZE))) {
            ArtifactRef model =
                    store.put(
                            store.uri(RunStore.runPrefix(jobId) + "model/model.safetensors"),
                            ("weights of " + jobId).getBytes(StandardCharsets.UTF_8),
                            "application/octet-stream");
            new RunStore(store)
                    .writeResult(
                            TrainingCompleted.newBuilder()
                                    .setJobId(jobId)
                                    .setModel(model)
                                    .addModelFiles(model)
                                    .setFinalLoss(0.25)
                                    .setSteps(3)
                                    .setEpochs(1)
                                    .setDevice("cpu")
                                    .build());
        }
    }
}
