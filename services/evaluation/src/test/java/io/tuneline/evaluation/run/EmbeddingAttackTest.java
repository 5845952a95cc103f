package io.tuneline.evaluation.run;

import static org.assertj.core.api.Assertions.assertThat;

import io.tuneline.engine.catalog.ModelCatalog;
import io.tuneline.engine.catalog.PretrainedModel;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.proto.v1.AttackKind;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * FGSM and PGD on the real MiniLM: the labels are the model's own clean predictions, so clean
 * accuracy is 1 and every drop is the attack's doing.
 */
class EmbeddingAttackTest {
    private static final List<String> TEXTS =
            List.of(
                    "a wonderful, moving film",
                    "boring from start to finish",
                    "the staff were rude and the room was cold",
                    "I would happily stay here again",
                    "the plot made no sense at all",
                    "brilliant acting and a clever script",
                    "an absolute waste of two hours",
                    "the food was fresh and full of flavour",
                    "it broke after two days",
                    "quick delivery, works as described",
                    "the sequel is even better than the first",
                    "never buying from this shop again");

    private static ClassifierScorer scorer;
    private static int[] truth;
    private static double[][] clean;

    @BeforeAll
    static void load(@org.junit.jupiter.api.io.TempDir Path dir) throws Exception {
        PretrainedModel base = ModelCatalog.resolve(ModelCatalog.MINILM_L6);
        Path tokenizer = dir.resolve("tokenizer.json");
        try (InputStream in = base.tokenizer().open()) {
            Files.copy(in, tokenizer);
        }
        scorer =
                ClassifierScorer.load(
                        EngineRuntime.start(0), base, tokenizer, 2, 32, Optional.empty());
        clean = scorer.probabilities(TEXTS);
        truth = new int[TEXTS.size()];
        for (int i = 0; i < truth.length; i++) {
            truth[i] = clean[i][1] > clean[i][0] ? 1 : 0;
        }
    }

    @AfterAll
    static void close() {
        if (scorer != null) {
            scorer.close();
        }
    }

    private static double accuracy(double[][] probs) {
        int right = 0;
        for (int i = 0; i < truth.length; i++) {
            if ((probs[i][1] > probs[i][0] ? 1 : 0) == truth[i]) {
                right++;
            }
        }
        return (double) right / truth.length;
    }

    /** Mean cross-entropy of the true labels. */
    private static double loss(double[][] probs) {
        double sum = 0;
        for (int i = 0; i < truth.length; i++) {
            sum -= Math.log(probs[i][truth[i]]);
        }
        return sum / truth.length;
    }

    @Test
    void aZeroRadiusChangesNothing() {
        double[][] probs = scorer.attacked(TEXTS, truth, AttackKind.ATTACK_KIND_FGSM, 0.0, 1);
        for (int i = 0; i < probs.length; i++) {
            assertThat(probs[i][0])
                    .isCloseTo(clean[i][0], org.assertj.core.data.Offset.offset(1e-6));
        }
    }

    @Test
    void fgsmRaisesTheLossAndPgdDoesAtLeastAsMuchDamage() {
        double eps = 0.02;
        double[][] fgsm = scorer.attacked(TEXTS, truth, AttackKind.ATTACK_KIND_FGSM, eps, 1);
        double[][] pgd = scorer.attacked(TEXTS, truth, AttackKind.ATTACK_KIND_PGD, eps, 10);
        // Moving along the gradient's sign must raise the loss of the true label.
        assertThat(loss(fgsm)).isGreaterThan(loss(clean));
        assertThat(loss(pgd)).isGreaterThanOrEqualTo(loss(fgsm) - 1e-6);
        assertThat(accuracy(pgd)).isLessThan(1.0);
        assertThat(accuracy(pgd)).isLessThanOrEqualTo(accuracy(fgsm));
        // The opposite direction (descending the loss) must lower it: the gradient's sign matters.
        int[] wrong = new int[truth.length];
        for (int i = 0; i < wrong.length; i++) {
            wrong[i] = 1 - truth[i];
        }
        double[][] towardsTruth =
                scorer.attacked(TEXTS, wrong, AttackKind.ATTACK_KIND_FGSM, eps, 1);
        assertThat(loss(towardsTruth)).isLessThan(loss(clean));
    }
}
