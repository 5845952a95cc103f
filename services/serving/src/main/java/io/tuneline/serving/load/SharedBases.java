package io.tuneline.serving.load;

import ai.djl.Model;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.engine.catalog.ModelCatalog;
import io.tuneline.engine.catalog.PretrainedModel;
import io.tuneline.engine.model.CausalLmCheckpoint;
import io.tuneline.engine.model.bert.BertEncoder;
import io.tuneline.engine.runtime.EngineRuntime;
import jakarta.enterprise.context.ApplicationScoped;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.HashMap;
import java.util.Map;
import org.jboss.logging.Logger;

/**
 * One copy in memory of each base model that loaded versions compute on ({@link
 * io.tuneline.engine.model.SharedBase}): loaded from the version's base model reference (a built-in
 * name, or an {@code s3://} Hugging Face directory, as the training worker resolved it) when the
 * first version of it is loaded, counted per version, and closed when its last version is unloaded.
 * A classifier's base is its encoder (the head is each version's own); a causal LM's base is the
 * whole model. Its bytes are the series {@code tuneline_serving_base_parameters_bytes{base}}, and
 * no version counts them in its own {@code tuneline_serving_model_parameters_bytes}.
 */
@ApplicationScoped
public class SharedBases {
    private static final Logger LOG = Logger.getLogger(SharedBases.class);

    private final ArtifactStore store;
    private final MeterRegistry meters;
    private final Map<String, Base> bases = new HashMap<>();

    public SharedBases(ArtifactStore store, MeterRegistry meters) {
        this.store = store;
        this.meters = meters;
    }

    /** A base in memory and how many loaded versions compute on it. */
    private static final class Base {
        final Model model;
        final long bytes;
        final Gauge gauge;
        int users;

        Base(Model model, long bytes, Gauge gauge) {
            this.model = model;
            this.bytes = bytes;
            this.gauge = gauge;
        }
    }

    /**
     * The base {@code ref} names, loaded on first use, with one more user: its block is a {@link
     * BertEncoder} or a {@link io.tuneline.engine.model.CausalLanguageModel}. Every call is paired
     * with one {@link #release}.
     */
    public synchronized Block acquire(String ref, EngineRuntime runtime) throws IOException {
        Base base = bases.get(ref);
        if (base == null) {
            long start = System.nanoTime();
            Model model = load(ref, runtime);
            long bytes = LoadedModel.parameterBytes(model.getBlock());
            Gauge gauge =
                    Gauge.builder(ServingMetrics.BASE_PARAMETER_BYTES, () -> bytes)
                            .description(
                                    "Bytes of a base model's parameters, held once for every"
                                            + " version loaded on it")
                            .baseUnit("bytes")
                            .tags("base", ref)
                            .register(meters);
            base = new Base(model, bytes, gauge);
            bases.put(ref, base);
            LOG.infof(
                    "loaded base %s (%d bytes) in %d ms",
                    ref, bytes, (System.nanoTime() - start) / 1_000_000);
        }
        base.users++;
        return base.model.getBlock();
    }

    /** One user fewer of {@code ref}; the last one closes the base. */
    public synchronized void release(String ref) {
        Base base = bases.get(ref);
        if (base == null) {
            return;
        }
        if (--base.users == 0) {
            bases.remove(ref);
            meters.remove(base.gauge);
            base.model.close();
            LOG.infof("unloaded base %s: no loaded version computes on it any more", ref);
        }
    }

    /** The bases in memory, by reference, with their number of users. */
    public synchronized Map<String, Integer> users() {
        Map<String, Integer> out = new HashMap<>();
        bases.forEach((ref, b) -> out.put(ref, b.users));
        return out;
    }

    private Model load(String ref, EngineRuntime runtime) throws IOException {
        Path scratch = Files.createTempDirectory("serving-base-");
        try {
            PretrainedModel pretrained = ModelCatalog.resolve(ref, store::download, scratch);
            if (pretrained.architecture() == PretrainedModel.Architecture.BERT) {
                BertEncoder encoder = new BertEncoder(pretrained.config().withoutDropout());
                Model model = Model.newInstance("base", runtime.device(), EngineRuntime.ENGINE);
                try {
                    encoder.initialize(
                            model.getNDManager(),
                            DataType.FLOAT32,
                            new Shape(1, 8),
                            new Shape(1, 8));
                    pretrained.loadInto(encoder);
                    model.setBlock(encoder);
                    return model;
                } catch (IOException | RuntimeException e) {
                    model.close();
                    throw e;
                }
            }
            return CausalLmCheckpoint.load(pretrained.directory().orElseThrow(), runtime.device());
        } finally {
            try (var files = Files.walk(scratch)) {
                files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    /** Closes every base; at shutdown, after the versions. */
    synchronized void closeAll() {
        bases.values().forEach(b -> b.model.close());
        bases.clear();
    }
}
